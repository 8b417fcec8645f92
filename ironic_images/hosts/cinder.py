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

"""Cinder's ``cinder.image.image_utils``, on the library's own functions.

The names and signatures are those of Cinder's module, so a volume driver
switches with an import (``from ironic_images.hosts import cinder as
image_utils``). Where Cinder hands in its ``image_service``, the bytes
come through it
(:class:`~ironic_images.hosts.cinder_service.CinderImageService`) and the
rest is the library's fetch: verified against the image's hash,
decompressed, inspected, through the safety gate, converted by qemu-img
only after that, under its limits.

Accepted and not used: ``run_as_root`` (qemu-img runs as the calling
process), ``blocksize`` (Cinder's dd copy when qemu-img is missing;
qemu-img is required), ``user_id``/``project_id`` (Cinder ignores them
too), ``throttle``, ``compress`` (qemu-img compression, best effort in
Cinder) and ``disable_sparse``.
"""

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import units

from ironic_images._i18n import _
from ironic_images.common import tempfiles
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.fetch import fetcher
from ironic_images.fetch import temporary
from ironic_images.fetch import volume
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.formats import names as formats
from ironic_images.hosts import cinder_service
from ironic_images.qemu import convert as qemu_convert
from ironic_images.qemu import info as qemu_info
from ironic_images.qemu import process

LOG = logging.getLogger(__name__)

_SIGNATURE_KEYS = ('img_signature', 'img_signature_hash_method',
                   'img_signature_certificate_uuid', 'img_signature_key_type')


def _service(image_service, context):
    return cinder_service.CinderImageService(image_service, context)


def _safe_format(path, image_href):
    """Inspect a file and pass it through the gate: its qemu-img format."""
    detected = inspection.inspect_file(path, image_href)
    return formats.qemu_name(gate.check_image(detected, image_href))


def _check_conversion_allowed(disk_format, volume_format, image_id,
                              upload=False):
    """Cinder's ``[DEFAULT]image_conversion_disable``, when it is there."""
    try:
        disabled = CONF.image_conversion_disable
    except cfg.NoSuchOptError:
        return  # not inside Cinder: nothing forbids a conversion
    if disabled and (formats.qemu_name(disk_format or '')
                     != formats.qemu_name(volume_format)):
        raise exception.ImageUnacceptable(
            image_href=image_id,
            reason=_('image conversion is disabled ([DEFAULT]'
                     'image_conversion_disable) and the %(what)s is '
                     '%(disk)s, not %(volume)s') % {
                'what': _('upload') if upload else _('image'),
                'disk': disk_format, 'volume': volume_format})


def fetch(context, image_service, image_id, path, _user_id, _project_id):
    """Download an image to ``path`` through Cinder's image service.

    Stricter than Cinder's: the image is verified and passes the safety
    gate before it is left at ``path`` (atomically).

    :raises: what Cinder's image service raises; as
        :func:`ironic_images.fetch.fetcher.fetch`.
    """
    fetcher.fetch(context, image_id, path,
                  service=_service(image_service, context))


def fetch_verify_image(context, image_service, image_id, dest, user_id=None,
                       project_id=None, size=None, run_as_root=True):
    """Download an image to ``dest``, verified, inspected, not converted.

    :param size: the volume size in GiB the image must fit, or None.
    :raises: as :func:`fetch`; ImageUnacceptable when it does not fit.
    """
    fetcher.fetch_verify_image(context, image_id, dest, size=size,
                               service=_service(image_service, context))


def fetch_to_volume_format(context, image_service, image_id, dest,
                           volume_format, blocksize, volume_subformat=None,
                           user_id=None, project_id=None, size=None,
                           run_as_root=True, disable_sparse=False):
    """Fetch an image and leave it at ``dest`` in ``volume_format``.

    A copy fetched by :meth:`TemporaryImages.fetch` in an open block is
    used instead of downloading again. The image's ``disk_format`` is its
    declared format (``[image_format]require_format_match``).

    :param volume_format: raw, qcow2, vmdk, vpc (vhd) or vhdx.
    :param volume_subformat: a qemu-img ``subformat``, or None.
    :param size: the volume size in GiB the image must fit, or None.
    :raises: what Cinder's image service raises; as
        :func:`ironic_images.fetch.volume.fetch_to_volume_format`;
        ImageUnacceptable for a XenServer VHD chain, or when Cinder's
        ``[DEFAULT]image_conversion_disable`` forbids the conversion.
    """
    service = _service(image_service, context)
    image_meta = service.show(image_id)
    disk_format = image_meta.get('disk_format')
    _check_conversion_allowed(disk_format, volume_format, image_id)
    if (disk_format == 'vhd'
            and image_meta.get('container_format') == 'ovf'):
        raise exception.ImageUnacceptable(
            image_href=image_id,
            reason=_('XenServer VHD chains (vhd in an ovf container) are '
                     'not supported'))
    volume.fetch_to_volume_format(
        context, image_id, dest, volume_format,
        volume_subformat=volume_subformat, size=size,
        expected_format=disk_format, service=service)


def fetch_to_raw(context, image_service, image_id, dest, blocksize,
                 user_id=None, project_id=None, size=None, run_as_root=True,
                 disable_sparse=False):
    """:func:`fetch_to_volume_format` to a raw volume."""
    fetch_to_volume_format(context, image_service, image_id, dest, 'raw',
                           blocksize, user_id=user_id, project_id=project_id,
                           size=size, run_as_root=run_as_root,
                           disable_sparse=disable_sparse)


def fetch_to_vhd(context, image_service, image_id, dest, blocksize,
                 volume_subformat=None, user_id=None, project_id=None,
                 run_as_root=True, disable_sparse=False):
    """:func:`fetch_to_volume_format` to a VHD (qemu-img's vpc) volume."""
    fetch_to_volume_format(context, image_service, image_id, dest, 'vpc',
                           blocksize, volume_subformat=volume_subformat,
                           user_id=user_id, project_id=project_id,
                           run_as_root=run_as_root,
                           disable_sparse=disable_sparse)


def upload_volume(context, image_service, image_meta, volume_path,
                  volume_format='raw', run_as_root=True, compress=True,
                  store_id=None, base_image_ref=None, volume_fd=None):
    """Upload a volume as the data of an image, through Cinder's service.

    The volume (whose format is ``volume_format``: qemu-img never guesses
    it) is converted to the image's ``disk_format`` unless it already is
    in it, and gzipped for a ``compressed`` container; the bytes go to
    ``image_service.update(context, image_meta['id'], {}, data,
    store_id=..., base_image_ref=...)``.

    :param image_meta: the image: ``id``, ``disk_format`` and
        ``container_format``.
    :param volume_fd: an open file of the volume to read instead of
        ``volume_path`` when no conversion is needed (newer Cinder passes
        it as a keyword).
    :raises: what Cinder's image service raises; ImageConvertFailed,
        InvalidImage, ImageUnacceptable; ImageUploadFailed when the volume
        cannot be read.
    """
    image_id = image_meta['id']
    disk_format = image_meta['disk_format']
    container_format = image_meta.get('container_format')
    _check_conversion_allowed(disk_format, volume_format, image_id,
                              upload=True)

    def _update(data):
        image_service.update(context, image_id, {}, data,
                             store_id=store_id, base_image_ref=base_image_ref)

    same = formats.qemu_name(disk_format) == formats.qemu_name(volume_format)
    if same and container_format != 'compressed' and volume_fd is not None:
        _update(volume_fd)
        return
    with volume.volume_data(volume_path, volume_format, disk_format,
                            image_id,
                            gzipped=container_format == 'compressed') as data:
        _update(data)


def convert_image(source, dest, out_format, out_subformat=None,
                  src_format=None, run_as_root=True, throttle=None,
                  cipher_spec=None, passphrase_file=None, compress=False,
                  src_passphrase_file=None, image_id=None, data=None,
                  disable_sparse=False):
    """Convert an image with qemu-img, after the safety gate.

    Without ``src_format`` the format is the one the inspector finds (the
    file passing the gate); with ``data`` (a ``QemuImgInfo``) that view
    is checked first, as Cinder's ``check_image_format`` does. The
    conversion is atomic: nothing is left at ``dest`` on failure.

    :raises: OperationNotSupported for encrypted (LUKS) conversions;
        as :func:`ironic_images.qemu.convert.convert_image`.
    """
    image_href = image_id or source
    if cipher_spec or passphrase_file or src_passphrase_file:
        raise exception.OperationNotSupported(
            operation='convert_image', image_href=image_href,
            reason=_('encrypted (LUKS) volumes are not supported'))
    if data is not None:
        qemu_info.check_qemu_view(data, image_href, src_format)
    if not src_format:
        src_format = _safe_format(source, image_href)
    qemu_convert.convert_image(source, dest, out_format, src_format,
                               out_subformat=out_subformat,
                               image_href=image_href)


def qemu_img_info(path, run_as_root=True, force_share=False,
                  allow_qcow2_backing_file=False, img_format=None):
    """qemu-img's view of a file that passed the safety gate.

    As in Cinder, ``img_format='raw'`` skips the inspection (qemu-img
    never interprets raw data) and a LUKS container is reported as raw.
    ``--force-share`` is always passed.

    :returns: an :class:`oslo_utils.imageutils.QemuImgInfo`.
    :raises: OperationNotSupported with ``allow_qcow2_backing_file``
        (backing files are always refused); InvalidImage,
        ImageUnacceptable, ImageNotFound.
    """
    if allow_qcow2_backing_file:
        raise exception.OperationNotSupported(
            operation='qemu_img_info', image_href=path,
            reason=_('qcow2 backing files are always refused'))
    fmt = 'raw' if img_format == 'raw' else _safe_format(path, path)
    info = qemu_info.qemu_img_info(path, fmt, path)
    if info.file_format == 'luks':
        info.file_format = 'raw'
    return info


def check_image_format(source, src_format=None, image_id=None, data=None,
                       run_as_root=True):
    """Check an image's format, as Cinder's function of that name.

    :raises: InvalidImage, ImageUnacceptable (a declared format qemu-img
        does not see, while ``[image_format]require_format_match``).
    """
    qemu_info.check_image_format(source, src_format, image_id, data)


def check_vmdk_image(image_id, data):
    """Refuse a VMDK whose create type is not allowed.

    :raises: InvalidImage (an ImageUnacceptable).
    """
    qemu_info.check_vmdk_image(image_id, data)


def resize_image(source, size, run_as_root=False, file_format=None):
    """Grow an image to ``size`` GiB.

    :param file_format: its format, or None for the one the inspector
        finds (the file passing the safety gate).
    :raises: as :func:`ironic_images.qemu.convert.resize_image`.
    """
    if not file_format:
        file_format = _safe_format(source, source)
    qemu_convert.resize_image(source, int(size * units.Gi), file_format)


def check_virtual_size(virtual_size, volume_size, image_id):
    """Refuse an image that does not fit a volume of ``volume_size`` GiB.

    :returns: the virtual size in GiB, rounded up.
    :raises: ImageUnacceptable.
    """
    return gate.check_virtual_size(virtual_size, volume_size, image_id)


def check_available_space(dest, image_size, image_id):
    """Refuse when the file system of ``dest`` lacks ``image_size`` bytes.

    :raises: InsufficientDiskSpace (Cinder raises ImageTooBig).
    """
    fetcher.check_available_space(dest, image_size, image_id)


def get_qemu_img_version():
    """The qemu-img version as a list of ints, or None; cached."""
    return process.get_qemu_img_version()


def check_qemu_img_version(minimum_version):
    """:raises: OperationNotSupported when qemu-img is older or missing."""
    process.check_qemu_img_version(minimum_version)


def fixup_disk_format(disk_format):
    """The qemu-img name of a Glance disk format (vhd -> vpc, iso -> raw)."""
    return formats.qemu_name(disk_format)


def from_qemu_img_disk_format(disk_format):
    """The Glance name of a qemu-img format (vpc -> vhd); raw stays raw."""
    return formats.from_qemu_name(disk_format)


def temporary_file(*args, **kwargs):
    """A temp file in ``[DEFAULT]tempdir``, removed at the end.

    :returns: a context manager yielding its path.
    """
    return tempfiles.temporary_file(*args, **kwargs)


def temporary_dir():
    """A temp directory in ``[DEFAULT]tempdir``, removed at the end.

    :returns: a context manager yielding its path.
    """
    return tempfiles.temporary_dir()


def verify_glance_image_signature(context, image_service, image_id, path):
    """Cinder's image signature check, which the library does not do.

    :returns: False for an image without signature properties (nothing
        to verify, as in Cinder).
    :raises: ImageUnacceptable for an image that has them: its signature
        cannot be verified here, and an unverified signed image is not
        passed as verified.
    """
    properties = _service(image_service, context).show(
        image_id).get('properties') or {}
    present = [key for key in _SIGNATURE_KEYS if properties.get(key)]
    if not present:
        return False
    raise exception.ImageUnacceptable(
        image_href=image_id,
        reason=_('it is signed (%s) and ironic-images cannot verify image '
                 'signatures') % ', '.join(present))


class TemporaryImages(temporary.TemporaryImages):
    """Images fetched once for a block of work, through Cinder's service.

    ``with TemporaryImages.fetch(image_service, context, image_id) as
    path``: the image is fetched (verified, inspected, not converted) to
    ``path``, and :func:`fetch_to_volume_format` for the same user and
    image in that block uses it.
    """

    @classmethod
    def fetch(cls, image_service, context, image_id, suffix=''):
        """Fetch an image to a temp file for the length of a block.

        :returns: a context manager yielding the path.
        :raises: as :func:`fetch_verify_image`.
        """
        return super().fetch(image_service, context, image_id,
                             suffix=suffix,
                             service=_service(image_service, context))
