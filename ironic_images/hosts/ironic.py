# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Ironic's image functions, with the names and signatures its callers use.

The functions of ``ironic.common.images`` (:func:`fetch`,
:func:`image_to_raw`, :func:`image_show`, :func:`download_size`) and of
``ironic.drivers.modules.image_cache`` (:class:`ImageCache`,
:func:`cleanup`, :func:`clean_up_caches`, :func:`clean_up_all`) as
Ironic 39 has them, so that switching a caller is an import change. They
are built on :mod:`ironic_images.fetch.fetcher` and
:mod:`ironic_images.cache.cache`: every image is verified, inspected by
the safety gate before qemu-img sees it, and written atomically.

Where the semantics differ from Ironic's (the safety gate always runs,
``disable_validation`` included; gzip and xz are decompressed like
zstd; ``fetch_image`` returns the format), the documentation page
"Using ironic-images from Ironic" says so.
"""

import os
import threading

from oslo_log import log as logging

from ironic_images.cache import cache
from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images.fetch import fetcher
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.formats import names as formats
from ironic_images import image_service

LOG = logging.getLogger(__name__)

# (priority, ImageCache subclass), highest priority first: the caches
# clean_up_caches() and clean_up_all() empty, as Ironic's decorator keeps.
_cache_cleanup_list = []
_cleanup_list_lock = threading.Lock()


def fetch(context, image_href, path, force_raw=False, checksum=None,
          checksum_algo=None, image_auth_data=None):
    """Download an image to ``path``, as ``ironic.common.images.fetch``.

    The bytes are verified against ``checksum`` while they arrive,
    decompressed (zstd, gzip, xz), inspected and written atomically; the
    safety gate refuses an unsafe image. With ``force_raw`` the file at
    ``path`` is a raw disk (a qcow2 is written as raw while it arrives).

    :param context: the request context (Glance), or None.
    :param image_href: any enabled scheme's href, or a Glance UUID.
    :param path: the destination file.
    :param force_raw: convert the image to raw.
    :param checksum: expected checksum (``algo:hex``, bare hex or a
        checksum file URL), or None.
    :param checksum_algo: the algorithm of a bare-hex ``checksum``.
    :param image_auth_data: credentials for drivers that take them (as
        :func:`ironic_images.image_service.get_image_service_auth_override`
        returns), or None.
    :returns: a :class:`ironic_images.fetch.fetcher.FetchedImage` (Ironic's
        returns None).
    :raises: ImageRefValidationFailed, ImageNotFound, ImageNotAuthorized,
        ImageDownloadFailed, ImageChecksumError (an InvalidImage),
        InsufficientDiskSpace, ImageUnacceptable, InvalidImage,
        ImageConvertFailed, TemporaryFailure.
    """
    function = fetcher.fetch_to_raw if force_raw else fetcher.fetch
    return function(context, image_href, path, checksum=checksum,
                    checksum_algo=checksum_algo,
                    image_auth_data=image_auth_data)


def image_to_raw(image_href, path, path_tmp):
    """Turn the image file at ``path_tmp`` into a raw disk at ``path``.

    As ``ironic.common.images.image_to_raw``: the file passes the safety
    gate; a raw, GPT or ISO image is moved to ``path``, any other format
    is converted by qemu-img into ``path`` and ``path_tmp`` is removed.
    On failure ``path_tmp`` is removed and nothing is left at ``path``.

    :param image_href: the image's href, for messages.
    :param path: the destination.
    :param path_tmp: the fetched image.
    :returns: a :class:`ironic_images.fetch.fetcher.FetchedImage` that
        describes ``path`` (Ironic's returns None).
    :raises: ImageNotFound when ``path_tmp`` does not exist;
        InvalidImage, ImageUnacceptable from the safety gate;
        InsufficientDiskSpace; ImageConvertFailed; ImageDownloadFailed
        when ``path`` cannot be written.
    """
    try:
        detected = inspection.inspect_file(path_tmp, image_href)
        fmt = gate.check_image(detected, image_href)
        fetched = fetcher.FetchedImage(
            path_tmp, os.path.getsize(path_tmp), fmt, detected.virtual_size,
            None, None, None)
        if fmt in formats.DISK_FORMATS:
            fetcher.commit(fetched, path, image_href)
        else:
            LOG.debug('%(href)s is %(format)s, converting it to raw',
                      {'href': image_href, 'format': fmt})
            fetcher.convert_fetched(fetched, path, 'raw', image_href)
            fetched.format = 'raw'
    finally:
        # Moved to path, converted, or refused: it is not wanted any more.
        fileutils.remove_quietly(path_tmp)
    return fetched


def image_show(context, image_href, image_service=None,
               image_auth_data=None):
    """The properties of an image, as ``ironic.common.images.image_show``.

    :param context: the request context (Glance), or None.
    :param image_href: the image.
    :param image_service: a driver to ask, or None for the href's own.
    :param image_auth_data: credentials for drivers that take them.
    :returns: the driver's ``show()`` dict (``size``, ``updated_at``,
        ``properties``, ...).
    :raises: UnknownImageService, ImageRefValidationFailed, ImageNotFound,
        ImageNotAuthorized, TemporaryFailure.
    """
    service = image_service or _service(image_href, context)
    if image_auth_data is not None and service.is_auth_set_needed:
        service.set_image_auth(image_href, image_auth_data)
    return service.show(image_href)


def download_size(context, image_href, image_service=None,
                  image_auth_data=None):
    """The size of an image in bytes, as ``image_show(...)['size']``.

    :returns: the size, or None when the source does not say.
    :raises: as :func:`image_show`.
    """
    return image_show(context, image_href, image_service=image_service,
                      image_auth_data=image_auth_data)['size']


def _service(image_href, context):
    return image_service.get_image_service(image_href, context=context)


class ImageCache:
    """A master-image cache, as ``ironic.drivers.modules.image_cache``'s.

    The masters are kept by :class:`ironic_images.cache.cache.ImageCache`:
    one download per image however many callers ask at once, hardlinks to
    the destinations, revalidation of mutable sources, eviction by TTL and
    size.

    :param master_dir: the cache directory; None disables caching (each
        call downloads to its destination).
    :param cache_size: the size cap in bytes.
    :param cache_ttl: seconds after which an unused master expires.
    :param disable_validation: accepted for Ironic's callers; the safety
        gate runs all the same, and only the declared format Ironic would
        fetch from the image service is not looked up.
    :param force_raw: the default of :meth:`fetch_image`'s ``force_raw``.
    """

    def __init__(self, master_dir, cache_size, cache_ttl,
                 disable_validation=False, force_raw=True):
        self.master_dir = master_dir
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        self._disable_validation = disable_validation
        self._force_raw = force_raw
        self._cache = (None if master_dir is None
                       else cache.ImageCache(master_dir, cache_size,
                                             cache_ttl))
        if master_dir is not None:
            try:
                os.makedirs(master_dir, exist_ok=True)
            except OSError as error:
                raise exception.ImageCacheError(
                    path=master_dir, reason=os.strerror(error.errno))

    def fetch_image(self, href, dest_path, ctx=None, force_raw=None,
                    expected_format=None, expected_checksum=None,
                    expected_checksum_algo=None, image_auth_data=None):
        """Put an image at ``dest_path``, from the cache when it can.

        :param href: the image: a Glance UUID or any enabled scheme's href.
        :param dest_path: the destination file (a hardlink to the master).
        :param ctx: the request context (Glance), or None.
        :param force_raw: convert to raw; None takes the constructor's.
        :param expected_format: the declared disk format. When None and
            validation is not disabled, the ``disk_format`` the image
            service shows (Glance's) is used, as Ironic does.
        :param expected_checksum: expected checksum of the image as
            served, or None.
        :param expected_checksum_algo: the algorithm of a bare value.
        :param image_auth_data: credentials for drivers that take them.
        :returns: the format of the file at ``dest_path`` (``raw`` when
            converted), where Ironic 39's returns None although its
            callers store the value as the image's disk format.
        :raises: as :func:`fetch`; ImageCacheError when the cache
            directory cannot be read.
        """
        force_raw = self._force_raw if force_raw is None else force_raw
        if expected_format is None and not self._disable_validation:
            expected_format = image_show(
                ctx, href, image_auth_data=image_auth_data).get(
                    'disk_format')
        if self._cache is None:
            function = fetcher.fetch_to_raw if force_raw else fetcher.fetch
            return function(ctx, href, dest_path,
                            checksum=expected_checksum,
                            checksum_algo=expected_checksum_algo,
                            expected_format=expected_format,
                            image_auth_data=image_auth_data).format
        return self._cache.fetch_image(
            href, dest_path, ctx=ctx, force_raw=force_raw,
            expected_format=expected_format,
            expected_checksum=expected_checksum,
            expected_checksum_algo=expected_checksum_algo,
            image_auth_data=image_auth_data).format

    def clean_up(self, amount=None):
        """Evict unused masters: expired first, then LRU down to the cap.

        :param amount: bytes to free, or None for TTL and size cap alone.
        :returns: the bytes freed (Ironic's returns None).
        :raises: ImageCacheError when the directory cannot be read.
        """
        if self._cache is None:
            return 0
        return self._cache.clean_up(amount)


def cleanup(priority):
    """Class decorator: register an :class:`ImageCache` subclass.

    As Ironic's: :func:`clean_up_caches` and :func:`clean_up_all` empty
    the caches of the registered classes, highest priority first. Each
    class is instantiated without arguments when a clean-up runs.

    :param priority: the order of the clean-up; higher first.
    :returns: the decorator.
    """
    def _register(cls):
        with _cleanup_list_lock:
            _cache_cleanup_list.append((priority, cls))
            _cache_cleanup_list.sort(reverse=True, key=lambda item: item[0])
        return cls

    return _register


def _registered_caches():
    with _cleanup_list_lock:
        classes = [cls for _priority, cls in _cache_cleanup_list]
    return [cls() for cls in classes]


def _free_space(directory):
    stat = os.statvfs(directory)
    return stat.f_frsize * stat.f_bavail


def _clean_up_caches(directory, amount, image_href):
    """Free ``amount`` bytes on ``directory``'s file system, if needed."""
    try:
        free = _free_space(directory)
        if amount < free:
            return
        device = os.stat(directory).st_dev
        for image_cache in _registered_caches():
            if (image_cache.master_dir is None
                    or os.stat(image_cache.master_dir).st_dev != device):
                continue
            image_cache.clean_up(amount=amount - free)
            free = _free_space(directory)
            if amount < free:
                return
    except OSError as error:
        raise exception.ImageCacheError(path=directory,
                                        reason=os.strerror(error.errno))
    raise exception.InsufficientDiskSpace(
        path=directory, image_href=image_href,
        required_mib=-(-amount // (1024 * 1024)),
        free_mib=free // (1024 * 1024))


def clean_up_caches(ctx, directory, images_info, image_auth_data=None):
    """Make room on ``directory``'s file system for some images.

    As Ironic's: the sizes the image services show are added up and, when
    the free space is short of them, the caches registered with
    :func:`cleanup` on the same file system are cleaned up, highest
    priority first.

    :param ctx: the request context (Glance), or None.
    :param directory: a cache directory.
    :param images_info: a list of ``(href, destination path)``.
    :param image_auth_data: credentials for drivers that take them.
    :raises: InsufficientDiskSpace when the caches cannot free enough;
        what :func:`download_size` raises.
    """
    hrefs = [href for href, _path in images_info]
    total = sum(download_size(ctx, href, image_auth_data=image_auth_data)
                or 0 for href in hrefs)
    _clean_up_caches(directory, total, ', '.join(hrefs))


def clean_up_all():
    """Clean up every cache registered with :func:`cleanup`.

    :raises: ImageCacheError when a cache directory cannot be read.
    """
    for image_cache in _registered_caches():
        image_cache.clean_up()
