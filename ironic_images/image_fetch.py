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

"""Fetching: from an href to a verified, inspected image on disk.

:func:`fetch` downloads through the image's driver into an
:class:`~ironic_images.image_sink.ImageSink` in a temp file beside the
destination: the driver's pipeline hashes what arrives while the sink
decompresses it, feeds the format inspector and writes it sparse. Then the
verdict of the inspector is checked (:func:`inspection.check_image`), the
file is fsynced and renamed into place. Nothing is read twice:
:func:`fetch_to_raw` writes a qcow2 as a raw disk while it arrives
(:mod:`ironic_images.qcow2_stream`), and any other format is converted by
qemu-img, which reads the fetched file once.
"""

import contextlib
import os
import shutil

from oslo_log import log as logging
from oslo_utils import units

from ironic_images._i18n import _
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images import fileutils
from ironic_images import image_checks
from ironic_images import image_service
from ironic_images import image_sink
from ironic_images import inspection
from ironic_images import masking
from ironic_images import qemu_convert
from ironic_images import qemu_img
from ironic_images import temporary

LOG = logging.getLogger(__name__)

# Formats whose bytes already are the disk: no conversion to raw.
RAW_FORMATS = ('raw', 'gpt', 'iso')


class FetchedImage:
    """An image fetched to disk, verified and inspected.

    :ivar path: where it is.
    :ivar size: its size in bytes (after decompression).
    :ivar format: the format of the file at ``path`` (oslo names: raw,
        qcow2, vmdk, vhd, vhdx, gpt, iso, ...).
    :ivar source_format: the format the image was fetched in, as
        :func:`check_image` settled it; differs from ``format`` once the
        image is converted.
    :ivar virtual_size: the disk size it describes, in bytes, or None.
    :ivar checksum: ``algo:hex`` the transfer verified, or None.
    :ivar compression: ``zstd``, ``gzip``, ``xz`` or None.
    :ivar properties: what the driver's ``show()`` said, or None.
    :ivar href: the href downloaded (an ``oci://`` tag resolved to its
        manifest digest).
    """

    def __init__(self, path, size, format, virtual_size, checksum,
                 compression, properties):
        self.path = path
        self.size = size
        self.format = format
        self.source_format = format
        self.virtual_size = virtual_size
        self.checksum = checksum
        self.compression = compression
        self.properties = properties
        self.href = None

    def __repr__(self):
        return ('FetchedImage(path=%r, format=%r, size=%r, '
                'virtual_size=%r, checksum=%r, compression=%r)'
                % (self.path, self.format, self.size, self.virtual_size,
                   self.checksum, self.compression))


def check_available_space(path, required_bytes, image_href):
    """Check a file system has room for ``required_bytes``.

    :param path: the destination file, or its directory.
    :param required_bytes: the bytes needed; None or 0 checks nothing.
    :param image_href: the image, for the message.
    :raises: InsufficientDiskSpace naming what is needed and what is free;
        ImageDownloadFailed when the file system cannot be queried.
    """
    if not required_bytes:
        return
    directory = path if os.path.isdir(path) else (
        os.path.dirname(os.path.abspath(path)))
    try:
        stat = os.statvfs(directory)
    except OSError as error:
        raise exception.ImageDownloadFailed(
            image_href=image_href,
            reason=_('cannot check the free space of %(dir)s: %(error)s')
            % {'dir': directory, 'error': os.strerror(error.errno)})
    free = stat.f_bavail * stat.f_frsize
    if free < required_bytes:
        raise exception.InsufficientDiskSpace(
            path=directory, image_href=image_href,
            required_mib=-(-required_bytes // units.Mi),
            free_mib=free // units.Mi)


def fetch(context, image_href, path, checksum=None, checksum_algo=None,
          expected_format=None, image_auth_data=None, progress=None,
          cpu_arch=None):
    """Download an image to ``path``: verified, decompressed, inspected.

    In one pass over the bytes: the checksum (and the digest or hash the
    source declares) is verified, zstd/gzip/xz is decompressed (capped by
    ``[download]max_decompressed_size``), the format inspector is fed and
    all-zero blocks are left as holes. The file is then checked
    (:func:`ironic_images.inspection.check_image`), fsynced and renamed
    to ``path``; on any failure nothing is left at ``path``.

    :param context: the request context (Glance), or None.
    :param image_href: the image: ``file://``, ``http(s)://``, ``oci://``
        (a tag is resolved to one artifact), a Glance UUID, or any scheme
        a driver is installed for.
    :param path: the destination file.
    :param checksum: expected checksum: ``algo:hex``, bare hex or the URL
        of a checksum file; checked on the bytes as served (compressed).
    :param checksum_algo: the algorithm of a bare-hex ``checksum``.
    :param expected_format: the declared disk format, or None.
    :param image_auth_data: credentials for drivers that take them
        (``oci``: as ``get_image_service_auth_override`` returns), or None.
    :param progress: ``progress(done, total)`` callable, or None.
    :param cpu_arch: for an OCI index: the architecture to pick.
    :returns: a :class:`FetchedImage`.
    :raises: ImageRefValidationFailed, ImageNotFound, ImageNotAuthorized,
        ImageDownloadFailed, ImageChecksumError, InsufficientDiskSpace,
        ImageUnacceptable, InvalidImage, TemporaryFailure.
    """
    with _fetched_part(context, image_href, path, checksum, checksum_algo,
                       expected_format, image_auth_data, progress,
                       cpu_arch) as fetched:
        _commit(fetched.path, path, image_href)
        fetched.path = path
    return fetched


def fetch_to_raw(context, image_href, path, checksum=None,
                 checksum_algo=None, expected_format=None,
                 image_auth_data=None, progress=None, cpu_arch=None):
    """Fetch an image and leave it at ``path`` as a raw disk.

    A raw (or gpt, iso) image is fetched straight to ``path``, sparse. A
    qcow2 is written as a raw disk while it arrives, once its virtual
    size is checked against the free space
    (:mod:`ironic_images.qcow2_stream`), when its header allows and
    ``[image_convert]stream_qcow2`` is set. Any other
    permitted format (or a qcow2 whose header does not allow it) is
    checked again by ``qemu-img info``, its virtual size checked against
    the free space, and converted with qemu-img; the fetched file is
    removed. A raw result that looks like another format is refused.

    :param context: as :func:`fetch`; so are the other parameters.
    :returns: a :class:`FetchedImage` whose ``format`` is the raw-like
        format (``raw``, ``gpt``, ``iso``).
    :raises: as :func:`fetch`, and ImageConvertFailed.
    """
    with _fetched_part(context, image_href, path, checksum, checksum_algo,
                       expected_format, image_auth_data, progress,
                       cpu_arch, to_raw=CONF.image_convert.stream_qcow2,
                       write_behind='raw') as fetched:
        if fetched.format in RAW_FORMATS:
            _commit(fetched.path, path, image_href)
        else:
            _convert_fetched(fetched, path, 'raw', image_href)
            fetched.format = 'raw'
        fetched.path = path
    return fetched


def _convert_fetched(fetched, dest, out_format, image_href,
                     out_subformat=None):
    src_format = image_checks.qemu_name(fetched.format)
    info = qemu_img.qemu_img_info(fetched.path, src_format, image_href)
    check_available_space(dest, info.virtual_size, image_href)
    qemu_img.convert_image(fetched.path, dest, out_format, src_format,
                           out_subformat=out_subformat,
                           image_href=image_href, source_info=info)
    fetched.virtual_size = info.virtual_size
    fetched.size = os.stat(dest).st_size


@contextlib.contextmanager
def _fetched_part(context, image_href, path, checksum, checksum_algo,
                  expected_format, image_auth_data, progress, cpu_arch,
                  to_raw=False, write_behind=True):
    """Fetch into a temp file beside ``path`` and pass the safety gate.

    Yields a :class:`FetchedImage` at the temp file, which is removed
    unless the caller moved it away. With ``to_raw``, a qcow2 may arrive
    written as a raw disk: its ``format`` is then ``raw``.
    ``write_behind`` is :class:`~ironic_images.image_sink.ImageSink`'s:
    True when the file is kept as it comes, ``'raw'`` when only a raw
    one is, False when a conversion reads it back.
    """
    with _unchecked_part(context, image_href, path, checksum, checksum_algo,
                         image_auth_data, progress, cpu_arch,
                         to_raw, write_behind) as (fetched, result):
        fetched.format = inspection.check_image(
            result.detected, fetched.href, expected_format)
        fetched.source_format = fetched.format
        if result.converted:
            qemu_convert.check_output(fetched.path, result.converted, None,
                                      fetched.href)
            fetched.format = result.converted
            # The disk as written: qemu's size, whole sectors, where the
            # inspector reports the header's field.
            fetched.virtual_size = result.size
        yield fetched


@contextlib.contextmanager
def _unchecked_part(context, image_href, path, checksum, checksum_algo,
                    image_auth_data, progress, cpu_arch, to_raw=False,
                    write_behind=True):
    service = image_service.get_image_service(image_href, context=context)
    if image_auth_data is not None and service.is_auth_set_needed:
        service.set_image_auth(image_href, image_auth_data)
    href, properties = _resolve(service, image_href, cpu_arch)
    check_available_space(path, properties.get('size'), href)
    part = _new_part(path, href)
    try:
        result = _download(service, href, part, checksum, checksum_algo,
                           progress, to_raw, write_behind)
        fetched = FetchedImage(part, result.size, None,
                               result.detected.virtual_size,
                               service.transfer_verified_checksum,
                               result.compression, properties)
        fetched.href = href
        yield fetched, result
    finally:
        fileutils.remove_quietly(part)


def fetch_unchecked(context, image_href, path, checksum=None,
                    checksum_algo=None, image_auth_data=None, progress=None,
                    cpu_arch=None):
    """Fetch an image without the safety gate, to report on it.

    Everything :func:`fetch` does except :func:`inspection.check_image`:
    the bytes are verified, decompressed and inspected, and written
    atomically to ``path``. Never hand the result to qemu-img; pass the
    returned detection to :func:`ironic_images.inspection.check_image`
    first.

    :param context: as :func:`fetch`; so are the other parameters.
    :returns: a tuple of a :class:`FetchedImage` (``format`` None) and the
        :class:`ironic_images.inspection.DetectedImage`.
    :raises: as :func:`fetch`, except the safety gate's refusals.
    """
    with _unchecked_part(context, image_href, path, checksum, checksum_algo,
                         image_auth_data, progress, cpu_arch) as (fetched,
                                                                  result):
        _commit(fetched.path, path, image_href)
        fetched.path = path
    return fetched, result.detected


def _commit(part, dest, image_href):
    """fsync a fetched temp file and rename it to its destination.

    Only a file that is kept is synced: one that only feeds a conversion
    is read from the page cache and removed, and syncing it would cost a
    second write of the whole image (and, on a discard-mounted disk, a
    synchronous trim when it is removed).
    """
    try:
        fd = os.open(part, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fileutils.commit(part, dest)
    except OSError as error:
        raise _write_error(dest, error, image_href)


def _write_error(dest, error, image_href):
    return exception.ImageDownloadFailed(
        image_href=image_href,
        reason=_('cannot write %(path)s: %(error)s') % {
            'path': dest, 'error': os.strerror(error.errno) if error.errno
            else error})


def _new_part(path, image_href):
    try:
        return fileutils.part_path(path)
    except OSError as error:
        raise exception.ImageDownloadFailed(
            image_href=image_href,
            reason=_('cannot create a file beside %(path)s: %(error)s')
            % {'path': path, 'error': os.strerror(error.errno)})


def _resolve(service, image_href, cpu_arch):
    """The href to download and its properties; OCI tags made specific."""
    try:
        return image_href, service.show(image_href)
    except exception.OciImageNotSpecific:
        pass
    artifact = service.identify_specific_image(image_href,
                                               cpu_arch=cpu_arch)
    if not artifact:
        raise exception.ImageNotFound(
            image_href=image_href,
            reason=_('no artifact matches architecture %s')
            % (cpu_arch or 'any'))
    href = artifact['oci_image_manifest_url']
    LOG.debug('%(href)s resolves to %(url)s',
              {'href': masking.mask_href(image_href),
               'url': masking.mask_href(href)})
    return href, service.show(href)


def _download(service, image_href, part, checksum, checksum_algo,
              progress, to_raw=False, write_behind=True):
    limit = CONF.download.max_decompressed_size * units.Mi

    def check_space(virtual_size):
        check_available_space(part, virtual_size, image_href)

    try:
        with open(part, 'wb', buffering=0) as image_file, \
                image_sink.ImageSink(
                    image_file, image_href,
                    inspector=inspection.StreamInspector(image_href),
                    max_decompressed_size=limit, to_raw=to_raw,
                    spill_dir=os.path.dirname(part), check_space=check_space,
                    write_behind=write_behind) as sink:
            service.download(image_href, sink, checksum=checksum,
                             checksum_algo=checksum_algo, progress=progress)
            return sink.finish()
    except OSError as error:
        raise exception.ImageDownloadFailed(
            image_href=image_href,
            reason=os.strerror(error.errno) if error.errno else str(error))


def fetch_verify_image(context, image_href, dest, size=None, **kwargs):
    """Fetch an image without converting it, refusing one too large.

    :param context: as :func:`fetch`.
    :param image_href: as :func:`fetch`.
    :param dest: the destination file.
    :param size: the volume size in GiB the image must fit, or None.
    :param kwargs: the other keyword arguments of :func:`fetch`.
    :returns: a :class:`FetchedImage`.
    :raises: as :func:`fetch`; ImageUnacceptable when the virtual size
        exceeds ``size``.
    """
    with _fetched_part(context, image_href, dest, **_fetch_args(kwargs)) \
            as fetched:
        if size is not None and fetched.virtual_size:
            inspection.check_virtual_size(fetched.virtual_size, size,
                                          image_href)
        _commit(fetched.path, dest, image_href)
        fetched.path = dest
    return fetched


def fetch_to_volume_format(context, image_href, dest, volume_format,
                           volume_subformat=None, size=None, **kwargs):
    """Fetch an image and leave it at ``dest`` in ``volume_format``.

    An image fetched in the same block by
    :meth:`ironic_images.temporary.TemporaryImages.fetch` is used instead
    of downloading it again.

    :param context: as :func:`fetch`.
    :param image_href: as :func:`fetch`.
    :param dest: the destination file.
    :param volume_format: raw, qcow2, vmdk, vhd (vpc) or vhdx.
    :param volume_subformat: a qemu-img ``subformat`` for vmdk/vhd/vhdx.
    :param size: the volume size in GiB the image must fit, or None.
    :param kwargs: the other keyword arguments of :func:`fetch`.
    :returns: a :class:`FetchedImage` describing ``dest``.
    :raises: as :func:`fetch_to_raw`.
    """
    volume_format = qemu_img.fixup_disk_format(volume_format)
    fetched_before = temporary.TemporaryImages.for_image_service(
        None).get(context, image_href)
    if fetched_before is not None:
        fetched = _inspect_local(fetched_before, image_href,
                                 kwargs.get('expected_format'))
        _to_format(fetched, dest, volume_format, volume_subformat, size,
                   image_href, keep_source=True)
        return fetched
    raw = volume_format == 'raw' and not volume_subformat
    # Kept as it comes only when raw; anything else is converted.
    with _fetched_part(context, image_href, dest,
                       to_raw=raw and CONF.image_convert.stream_qcow2,
                       write_behind='raw' if raw else False,
                       **_fetch_args(kwargs)) as fetched:
        _to_format(fetched, dest, volume_format, volume_subformat, size,
                   image_href)
    return fetched


def _to_format(fetched, dest, volume_format, volume_subformat, size,
               image_href, keep_source=False):
    if size is not None and fetched.virtual_size:
        inspection.check_virtual_size(fetched.virtual_size, size, image_href)
    same = (fetched.format == volume_format
            or (volume_format == 'raw' and fetched.format in RAW_FORMATS))
    if same and not volume_subformat:
        if keep_source:
            check_available_space(dest, fetched.size, image_href)
            try:
                with fileutils.atomic_write(dest) as out, \
                        open(fetched.path, 'rb') as source:
                    shutil.copyfileobj(source, out, CONF.download.chunk_size)
            except OSError as error:
                raise _write_error(dest, error, image_href)
        else:
            _commit(fetched.path, dest, image_href)
    else:
        _convert_fetched(fetched, dest, volume_format, image_href,
                         out_subformat=volume_subformat)
        fetched.format = volume_format
    fetched.path = dest


def _inspect_local(path, image_href, expected_format):
    detected = inspection.inspect_file(path, image_href)
    fmt = inspection.check_image(detected, image_href, expected_format)
    return FetchedImage(path, os.stat(path).st_size, fmt,
                        detected.virtual_size, None, None, None)


def _fetch_args(kwargs):
    args = dict.fromkeys(('checksum', 'checksum_algo', 'expected_format',
                          'image_auth_data', 'progress', 'cpu_arch'))
    unknown = set(kwargs) - set(args)
    if unknown:
        raise TypeError('unexpected arguments: %s' % ', '.join(
            sorted(unknown)))
    args.update(kwargs)
    return args
