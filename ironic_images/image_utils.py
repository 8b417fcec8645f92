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

"""Everything between an href and a safe image on disk, in one place.

The names Cinder's ``image_utils`` and Ironic's ``images`` callers know,
gathered from the modules that implement them:

- :mod:`ironic_images.image_fetch`: :func:`fetch`, :func:`fetch_to_raw`,
  :func:`fetch_verify_image`, :func:`fetch_to_volume_format`,
  :func:`check_available_space`;
- :mod:`ironic_images.inspection`: format detection and safety checks;
- :mod:`ironic_images.qemu_img`: ``qemu-img info``, resizing, versions,
  and (from :mod:`ironic_images.qemu_convert`) conversion;
- :mod:`ironic_images.temporary`: :class:`TemporaryImages`,
  :func:`temporary_file`, :func:`temporary_dir`;

and :func:`upload_volume`, which is defined here.
"""

import os

from ironic_images._i18n import _
from ironic_images import api
from ironic_images import exception
from ironic_images import image_fetch
from ironic_images import inspection
from ironic_images import qemu_img
from ironic_images import temporary

FetchedImage = image_fetch.FetchedImage
RAW_FORMATS = image_fetch.RAW_FORMATS
check_available_space = image_fetch.check_available_space
fetch = image_fetch.fetch
fetch_to_raw = image_fetch.fetch_to_raw
fetch_to_volume_format = image_fetch.fetch_to_volume_format
fetch_unchecked = image_fetch.fetch_unchecked
fetch_verify_image = image_fetch.fetch_verify_image

StreamInspector = inspection.StreamInspector
check_image = inspection.check_image
check_image_format = inspection.check_image_format
check_virtual_size = inspection.check_virtual_size
check_vmdk_image = inspection.check_vmdk_image
inspect_file = inspection.inspect_file

check_qemu_img_version = qemu_img.check_qemu_img_version
convert_image = qemu_img.convert_image
fixup_disk_format = qemu_img.fixup_disk_format
from_qemu_img_disk_format = qemu_img.from_qemu_img_disk_format
get_qemu_img_version = qemu_img.get_qemu_img_version
qemu_img_info = qemu_img.qemu_img_info
resize_image = qemu_img.resize_image

TemporaryImages = temporary.TemporaryImages
temporary_dir = temporary.temporary_dir
temporary_file = temporary.temporary_file


def upload_volume(context, image_href, image_meta, volume_path,
                  volume_format='raw'):
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
        cannot be read; what :meth:`ironic_images.api.API.update` raises.
    """
    meta = dict(image_meta or {})
    out_format = fixup_disk_format(volume_format)
    meta['disk_format'] = from_qemu_img_disk_format(out_format)
    meta.setdefault('container_format', 'bare')
    with temporary_dir() as scratch:
        upload_path = volume_path
        if out_format != 'raw':
            upload_path = os.path.join(scratch, 'upload')
            qemu_img.convert_image(volume_path, upload_path, out_format,
                                   'raw', image_href=image_href)
        try:
            data = open(upload_path, 'rb')
        except OSError as error:
            raise exception.ImageUploadFailed(
                image_href=image_href,
                reason=_('cannot read %(path)s: %(error)s') % {
                    'path': upload_path, 'error': error.strerror})
        with data:
            return api.API().update(context, image_href, meta, data=data)
