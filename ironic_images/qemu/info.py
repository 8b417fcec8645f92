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

"""qemu-img info, and the one re-check of qemu-img's view of an image.

qemu-img opens what a qcow2 or VMDK header names (backing files, data
files, extents) as soon as it opens the file, even for ``info``: a file
reaches it only after the safety gate (:func:`check_source`), always with
an explicit ``-f``. What it then reports is checked again
(:func:`check_qemu_view`) even though the format inspector should already
have refused such an image: defence in depth against an inspector gap.
"""

import typing

from oslo_concurrency import processutils
from oslo_utils import imageutils

from ironic_images._i18n import _
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.formats import names as formats
from ironic_images.qemu import process


def check_source(source: str, format: str, image_href: str) -> str:
    """Pass a source through the safety gate before qemu-img opens it.

    ``qemu-img -f raw`` never interprets the data, so a raw source needs
    no gate (a raw volume may hold anything, a qcow2 header included).
    Any other format is inspected and must pass
    :func:`ironic_images.formats.gate.check_image`, as a fetched image
    does.

    :param source: the image file.
    :param format: its declared format (Glance or qemu-img name).
    :param image_href: the image's href, for messages.
    :returns: the qemu-img name of the format the gate accepted.
    :raises: InvalidImage, ImageUnacceptable, ImageNotFound.
    """
    qemu_format = formats.qemu_name(format)
    if qemu_format == 'raw':
        return qemu_format
    detected = inspection.inspect_file(source, image_href)
    return formats.qemu_name(gate.check_image(detected, image_href, format))


def check_qemu_view(info: imageutils.QemuImgInfo, image_href: str,
                    expected_format: typing.Optional[str] = None,
                    forced: bool = False) -> None:
    """Refuse what qemu-img reports that the safety gate must not let by.

    In order: qemu-img found a format; it is ``expected_format`` (when
    ``forced``, because it was passed with ``-f``; otherwise when
    ``[image_format]require_format_match`` is set); no backing file; no
    external data file; a VMDK create type in
    ``[image_format]vmdk_allowed_types``. Check names are the gate's.

    :param info: an :class:`oslo_utils.imageutils.QemuImgInfo`.
    :param image_href: the image, for messages.
    :param expected_format: the format declared or forced, any vocabulary.
    :param forced: qemu-img was told the format with ``-f``.
    :raises: ImageUnacceptable (checks ``format``, ``format_match``);
        InvalidImage (``backing_file``, ``data_file``,
        ``vmdk_allowed_types``, and ``format_match`` when ``forced``).
    """
    if not info.file_format:
        gate.refuse(exception.ImageUnacceptable, image_href, 'format',
                    _('qemu-img found no format'))
    if (expected_format
            and (forced or CONF.image_format.require_format_match)
            and info.file_format != formats.qemu_name(expected_format)):
        # Told the format with -f, qemu-img reports another: broken.
        cls = exception.InvalidImage if forced else (
            exception.ImageUnacceptable)
        gate.refuse(cls, image_href, 'format_match',
                    _('qemu-img reports %(found)s, expected %(expected)s')
                    % {'found': info.file_format,
                       'expected': expected_format})
    if info.backing_file is not None:
        gate.refuse(exception.InvalidImage, image_href, 'backing_file',
                    _('qemu-img reports a backing file %s')
                    % info.backing_file)
    specific = (info.format_specific or {}).get('data') or {}
    if specific.get('data-file') is not None:
        gate.refuse(exception.InvalidImage, image_href, 'data_file',
                    _('qemu-img reports an external data file %s')
                    % specific['data-file'])
    if info.file_format == 'vmdk':
        gate.check_vmdk_create_type(specific.get('create-type'), image_href)


def check_vmdk_image(image_id: str, data: imageutils.QemuImgInfo) -> None:
    """Refuse a VMDK whose create type qemu-img reports is not allowed.

    As Cinder's: the create type must be one of
    ``[image_format]vmdk_allowed_types``, whose defaults cannot name other
    files. Images of other formats pass.

    :param image_id: the image's id or href, for messages.
    :param data: an :class:`oslo_utils.imageutils.QemuImgInfo`.
    :raises: InvalidImage when the create type is unknown or not allowed.
    """
    if data.file_format != 'vmdk':
        return
    try:
        create_type = data.format_specific['data']['create-type']
    except (KeyError, TypeError):
        create_type = None
    gate.check_vmdk_create_type(create_type, image_id)


def qemu_img_info(path: str, format: str,
                  image_href: typing.Optional[str] = None
                  ) -> imageutils.QemuImgInfo:
    """Return qemu-img's view of an image, checked again.

    Runs ``qemu-img info -f FORMAT --output=json --force-share`` under the
    address-space and CPU-time caps of ``[image_convert]``, parses it with
    :class:`oslo_utils.imageutils.QemuImgInfo`, then passes it through
    :func:`check_qemu_view`.

    Only call it on a file the format inspector has passed: qemu-img opens
    what a VMDK descriptor or a qcow2 data-file names.

    :param path: the image file.
    :param format: its format (Glance or qemu-img name); required, so
        qemu-img never guesses.
    :param image_href: the image's href, for messages (default: ``path``).
    :returns: an :class:`oslo_utils.imageutils.QemuImgInfo`.
    :raises: InvalidImage when a check fails (the message names it).
    :raises: ImageUnacceptable when qemu-img fails, hits a limit or prints
        what cannot be parsed.
    """
    image_href = image_href or path
    if not format:
        raise exception.ImageUnacceptable(
            image_href=image_href,
            reason=_('qemu-img info needs the image format; it is never '
                     'guessed'))
    qemu_format = formats.qemu_name(format)
    try:
        out, _err = process.execute('info', '-f', qemu_format,
                                    '--output=json', '--force-share',
                                    process.local_path(path))
    except (processutils.ProcessExecutionError, OSError) as e:
        raise exception.ImageUnacceptable(
            image_href=image_href,
            reason=_('qemu-img info failed: %s') % process.failure_reason(e))
    try:
        info = imageutils.QemuImgInfo(out, format='json')
    except (ValueError, TypeError, AttributeError) as e:
        raise exception.ImageUnacceptable(
            image_href=image_href,
            reason=_('cannot parse qemu-img info output: %s') % e)
    check_qemu_view(info, image_href, qemu_format, forced=True)
    return info


def check_image_format(source: str, src_format: typing.Optional[str] = None,
                       image_id: typing.Optional[str] = None,
                       data: typing.Optional[imageutils.QemuImgInfo] = None
                       ) -> imageutils.QemuImgInfo:
    """Check an image file's format, as Cinder's function of that name.

    Without ``data``, the file is first inspected and passed through
    :func:`ironic_images.formats.gate.check_image` (so qemu-img never opens
    an unsafe file), then :func:`qemu_img_info` gives qemu-img's view.
    Given ``data``, that view is passed through :func:`check_qemu_view`
    with ``src_format`` as the declared format.

    :param source: the image file.
    :param src_format: the declared format, or None.
    :param image_id: the image's id or href, for messages (default:
        ``source``).
    :param data: an :class:`oslo_utils.imageutils.QemuImgInfo` of the
        image, or None to inspect it and run qemu-img info.
    :returns: the :class:`~oslo_utils.imageutils.QemuImgInfo` checked.
    :raises: InvalidImage, ImageUnacceptable (see
        :func:`ironic_images.formats.gate.check_image`); ImageNotFound if
        ``source`` does not exist.
    """
    image_href = image_id or source
    if data is None:
        detected = inspection.inspect_file(source, image_href)
        fmt = gate.check_image(detected, image_href, src_format)
        data = qemu_img_info(source, fmt, image_href)
    check_qemu_view(data, image_href, src_format)
    return data
