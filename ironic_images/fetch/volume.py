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

"""Images onto volumes, as Cinder's ``image_utils`` has it.

:func:`fetch_to_volume_format` fetches an image and leaves it in a
volume's format (using a copy fetched in a
:class:`~ironic_images.fetch.temporary.TemporaryImages` block when there is
one); :func:`upload_volume` sends a volume to Glance.

The destination is a file or, usually, a block device (a volume attached
to the host): a raw image or a streamable qcow2 is then written straight
onto the device while it downloads; any other image goes through a temp
file in ``[DEFAULT]tempdir`` and ``qemu-img convert -n`` onto the device
(see :mod:`ironic_images.fetch.targets`).
"""

import contextlib
import gzip
import os
import shutil
import typing

from ironic_images._i18n import _
from ironic_images.common import tempfiles
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.fetch import fetcher
from ironic_images.fetch import targets
from ironic_images.fetch import temporary
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.formats import names as formats
from ironic_images import image_service
from ironic_images.qemu import convert as qemu_convert
from ironic_images.sink import destination


def fetch_to_volume_format(context: typing.Any, image_href: str, dest: str,
                           volume_format: str,
                           volume_subformat: typing.Optional[str] = None,
                           size: typing.Optional[int] = None,
                           **kwargs: typing.Any) -> fetcher.FetchedImage:
    """Fetch an image and leave it at ``dest`` in ``volume_format``.

    An image fetched in the same block by
    :meth:`ironic_images.fetch.temporary.TemporaryImages.fetch` is used
    instead of downloading it again.

    :param context: as :func:`ironic_images.fetch.fetcher.fetch`.
    :param image_href: as :func:`~ironic_images.fetch.fetcher.fetch`.
    :param dest: the destination: a file or a block device (written in
        place, after a check that the disk fits it).
    :param volume_format: raw, qcow2, vmdk, vhd (vpc) or vhdx.
    :param volume_subformat: a qemu-img ``subformat`` for vmdk/vhd/vhdx.
    :param size: the volume size in GiB the image must fit, or None.
    :param kwargs: the other keyword arguments of
        :func:`~ironic_images.fetch.fetcher.fetch`.
    :returns: a :class:`~ironic_images.fetch.fetcher.FetchedImage`
        describing ``dest``.
    :raises: as :func:`~ironic_images.fetch.fetcher.fetch_to_raw`;
        ImageUnacceptable when the disk does not fit the device or
        ``size`` (the device is then untouched).
    """
    volume_format = formats.qemu_name(volume_format)
    request = fetcher.FetchRequest(context, image_href, dest, **kwargs)
    fetched_before = temporary.TemporaryImages.for_image_service(
        None).get(context, image_href)
    if fetched_before is not None:
        fetched = _inspect_local(fetched_before, image_href,
                                 request.expected_format)
        _to_format(fetched, dest, volume_format, volume_subformat, size,
                   image_href, keep_source=True)
        return fetched
    raw = volume_format == 'raw' and not volume_subformat
    # Kept as it comes only when raw; anything else is converted.
    with fetcher.fetched_part(
            request, to_raw=raw and CONF.image_convert.stream_qcow2,
            write_behind='raw' if raw else False,
            mode=targets.RAW if raw else targets.CONVERT,
            volume_size=size) as fetched:
        _to_format(fetched, dest, volume_format, volume_subformat, size,
                   image_href)
    return fetched


def _to_format(fetched, dest, volume_format, volume_subformat, size,
               image_href, keep_source=False):
    if size is not None and fetched.virtual_size:
        gate.check_virtual_size(fetched.virtual_size, size, image_href)
    same = (fetched.format == volume_format
            or (volume_format == 'raw'
                and fetched.format in formats.DISK_FORMATS))
    if same and not volume_subformat:
        if keep_source:
            fetcher.check_available_space(dest, fetched.size, image_href)
            destination.copy_to(fetched.path, dest, image_href)
            fetched.path = dest
        else:
            fetcher.commit(fetched, dest, image_href)
    else:
        fetcher.convert_fetched(fetched, dest, volume_format, image_href,
                                out_subformat=volume_subformat)
        fetched.format = volume_format


def _inspect_local(path, image_href, expected_format):
    detected = inspection.inspect_file(path, image_href)
    fmt = gate.check_image(detected, image_href, expected_format)
    return fetcher.FetchedImage(path, os.stat(path).st_size, fmt,
                                detected.virtual_size, None, None, None)


@contextlib.contextmanager
def volume_data(volume_path, volume_format, out_format, image_href,
                gzipped=False):
    """The bytes to upload of a volume: converted, gzipped, as asked.

    :param volume_path: the volume (a raw file or block device).
    :param volume_format: its format; qemu-img never guesses it.
    :param out_format: the format to upload, any vocabulary.
    :param image_href: the image, for messages.
    :param gzipped: gzip the bytes (a Glance ``compressed`` container).
    :returns: a context manager yielding a binary file open for reading;
        a conversion (into ``[DEFAULT]tempdir``) is removed at the end.
    :raises: ImageConvertFailed, InvalidImage, ImageUnacceptable;
        ImageUploadFailed when the volume cannot be read.
    """
    with tempfiles.temporary_dir() as scratch:
        path = volume_path
        if formats.qemu_name(out_format) != formats.qemu_name(volume_format):
            path = os.path.join(scratch, 'upload')
            qemu_convert.convert_image(volume_path, path,
                                       formats.qemu_name(out_format),
                                       volume_format, image_href=image_href)
        try:
            if gzipped:
                path = _gzipped(path, os.path.join(scratch, 'upload.gz'))
            data = open(path, 'rb')
        except OSError as error:
            raise exception.ImageUploadFailed(
                image_href=image_href,
                reason=_('cannot read %(path)s: %(error)s') % {
                    'path': error.filename or path,
                    'error': error.strerror or error})
        with data:
            yield data


def _gzipped(path, out):
    with open(path, 'rb') as source, gzip.open(out, 'wb') as target:
        shutil.copyfileobj(source, target, CONF.download.chunk_size)
    return out


def upload_volume(context: typing.Any, image_href: str, image_meta: dict,
                  volume_path: str, volume_format: str = 'raw') -> dict:
    """Upload a volume as the data of an existing Glance image.

    The volume is converted to ``volume_format`` first (in
    ``[DEFAULT]tempdir``) unless it already is in it.

    :param context: the request context.
    :param image_href: the Glance image (UUID or ``glance://``) to fill.
    :param image_meta: properties to set on it (``disk_format`` and
        ``container_format`` are set from ``volume_format``).
    :param volume_path: the volume (a raw file or block device).
    :param volume_format: the format to upload.
    :raises: ImageConvertFailed; ImageUploadFailed when the volume
        cannot be read; OperationNotSupported for an image service that
        cannot change images; what the Glance driver's ``update`` raises.
    """
    meta = dict(image_meta or {})
    out_format = formats.qemu_name(volume_format)
    meta['disk_format'] = formats.from_qemu_name(out_format)
    meta.setdefault('container_format', 'bare')
    service = image_service.get_image_service(image_href, context=context)
    with volume_data(volume_path, 'raw', out_format, image_href) as data:
        return service.update(context, image_href, meta, data=data)
