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

"""The safety gate between format detection and qemu-img.

:func:`check_image` decides whether an image that
:mod:`ironic_images.inspection` has inspected may go on, and as which
format. The other functions keep Cinder's names and semantics
(``cinder.image.image_utils``) and add the inspector's verdict before
qemu-img ever opens the file.

Every refusal raises :class:`~ironic_images.exception.InvalidImage` (the
image is unsafe or broken) or
:class:`~ironic_images.exception.ImageUnacceptable` (the image is fine but
the configuration does not accept it), whose message names the check that
failed; the name is also in the exception's ``kwargs['check']``.
"""

import math

from oslo_log import log as logging
from oslo_utils.imageutils import format_inspector
from oslo_utils import units

from ironic_images._i18n import _
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images import masking

LOG = logging.getLogger(__name__)

#: Detected formats that are raw data to qemu-img: a GPT is a whole disk.
RAW_FORMATS = frozenset(['raw', 'gpt'])
# Declared formats that mean raw: kernels and ramdisks are raw files.
_RAW_ALIASES = frozenset(['raw', 'aki', 'ari', 'ami'])
# Declared names (Glance's or qemu-img's) -> the inspector's names.
_INSPECTOR_NAMES = {'vpc': 'vhd', 'qcow': 'qcow2'}
# Declared names -> qemu-img's names, to compare with qemu-img info.
_QEMU_NAMES = {'vhd': 'vpc', 'iso': 'raw', 'gpt': 'raw', 'ploop': 'parallels'}


def _refuse(cls, image_href, check, detail):
    LOG.error('Security: image %(href)s is refused, %(check)s check '
              'failed: %(detail)s',
              {'href': masking.mask_href(str(image_href)), 'check': check,
               'detail': detail})
    raise cls(image_href=image_href, check=check,
              reason=_('%(check)s check failed: %(detail)s') % {
                  'check': check, 'detail': detail})


def _declared(fmt):
    """The inspector's name for a declared format."""
    fmt = str(fmt).strip().lower()
    fmt = _INSPECTOR_NAMES.get(fmt, fmt)
    return 'raw' if fmt in _RAW_ALIASES else fmt


def format_matches(actual, expected):
    """Tell whether a detected format is what was declared.

    A declared raw (or aki, ari, ami) accepts raw and gpt; ``vpc`` is
    ``vhd``. An ISO that carries a GPT was already detected as ``iso``.

    :param actual: the detected format (inspector name).
    :param expected: the declared format (Glance or qemu-img name).
    :returns: True if they match.
    """
    expected = _declared(expected)
    if expected == 'raw':
        return actual in RAW_FORMATS
    return actual == expected


def permitted_formats():
    """The formats ``[image_format]permitted_formats`` lets through.

    As in Ironic, permitting raw permits gpt (a whole-disk image).

    :returns: a set of inspector format names.
    """
    permitted = set(f.strip().lower()
                    for f in CONF.image_format.permitted_formats)
    if 'raw' in permitted:
        permitted |= RAW_FORMATS
    return permitted


def _check_vmdk_create_type(create_type, image_href):
    allowed = CONF.image_format.vmdk_allowed_types
    if (create_type or '').lower() not in {t.lower() for t in allowed}:
        _refuse(exception.InvalidImage, image_href, 'vmdk_allowed_types',
                _('VMDK create type %(type)s is not one of %(allowed)s') % {
                    'type': create_type or _('unknown'),
                    'allowed': ', '.join(allowed)})


def _check_vmdk(inspector, image_href):
    _check_vmdk_create_type(getattr(inspector, 'vmdktype', None),
                            image_href)
    if not inspector.has_region('header'):
        # A descriptor file with no sparse header: monolithicSparse and
        # streamOptimized images always embed their descriptor, and a
        # separate one names its extents as other files (oslo refuses
        # paths, but not a sibling file of the image, e.g. another image
        # of the cache).
        _refuse(exception.InvalidImage, image_href, 'vmdk_descriptor_file',
                _('a VMDK descriptor file is refused; only VMDK images '
                  'with an embedded descriptor are accepted'))


def _safety_check(detected, image_href):
    fmt = detected.format
    if fmt in detected.errors:
        _refuse(exception.InvalidImage, image_href, 'parse',
                _('the %(format)s structures cannot be parsed: %(error)s') %
                {'format': fmt, 'error': detected.errors[fmt]})
    try:
        detected.inspector.safety_check()
    except format_inspector.SafetyCheckFailed as e:
        names = sorted(e.failures)
        _refuse(exception.InvalidImage, image_href, ','.join(names),
                '; '.join(str(e.failures[n]) for n in names))
    except format_inspector.ImageFormatError as e:
        # Raised for an inspector that did not get every region it needs:
        # a truncated image, or structures that point past the end.
        _refuse(exception.InvalidImage, image_href, 'complete',
                _('the %(format)s image is incomplete: %(error)s') % {
                    'format': fmt, 'error': e})
    except Exception as e:
        _refuse(exception.InvalidImage, image_href, 'parse',
                _('the %(format)s safety check crashed: %(error)s') % {
                    'format': fmt, 'error': e})


def check_image(detected, image_href, expected_format=None):
    """The safety gate: refuse an unsafe or unwanted image.

    In order: a single format (an ISO with a GPT counts as ISO; any other
    pair, such as an ISO hiding a qcow2 header, is refused); for a VMDK,
    a create type in ``[image_format]vmdk_allowed_types`` and an embedded
    descriptor (no separate descriptor file); the format inspector's
    safety checks (backing file, data file, unknown qcow2 features, VMDK
    descriptor and footer, MBR of a GPT, banned formats such as qed), which
    ``[image_format]disable_deep_inspection`` skips with a warning; the
    format in ``[image_format]permitted_formats``; the format matching
    ``expected_format`` when ``[image_format]require_format_match``.

    :param detected: a :class:`ironic_images.inspection.DetectedImage`.
    :param image_href: the href of the image, for messages.
    :param expected_format: the declared format (Glance disk_format or
        qemu-img name), or None.
    :returns: the format to use: the detected one, or ``raw`` when raw
        was declared and a GPT disk found.
    :raises: InvalidImage when the image is unsafe or cannot be parsed.
    :raises: ImageUnacceptable when its format is not permitted or does
        not match ``expected_format``.
    """
    if detected.format is None:
        _refuse(exception.InvalidImage, image_href, 'single_format',
                _('the image matches several formats (%s); a header hidden '
                  'in another is refused') % ', '.join(detected.matches))
    fmt = detected.format
    deep = not CONF.image_format.disable_deep_inspection
    if fmt == 'vmdk' and (detected.vmdk_create_type or not deep):
        _check_vmdk(detected.inspector, image_href)
    if not deep:
        LOG.warning('Security: the safety checks of the format inspector '
                    'are disabled ([image_format]disable_deep_inspection); '
                    'continuing with image %(href)s as %(format)s.',
                    {'href': masking.mask_href(str(image_href)),
                     'format': fmt})
    else:
        _safety_check(detected, image_href)
        if fmt == 'vmdk' and not detected.vmdk_create_type:
            # Unparsed descriptors fail the safety check; never let one by.
            _check_vmdk(detected.inspector, image_href)
    permitted = permitted_formats()
    if fmt not in permitted:
        _refuse(exception.ImageUnacceptable, image_href, 'permitted_formats',
                _('format %(format)s is not one of %(permitted)s') % {
                    'format': fmt, 'permitted': ', '.join(sorted(permitted))})
    if expected_format:
        if not format_matches(fmt, expected_format):
            if CONF.image_format.require_format_match:
                _refuse(exception.ImageUnacceptable, image_href,
                        'format_match',
                        _('the image is %(format)s, declared as '
                          '%(expected)s') % {'format': fmt,
                                             'expected': expected_format})
            LOG.warning('Image %(href)s is %(format)s, declared as '
                        '%(expected)s; accepted as '
                        '[image_format]require_format_match is False.',
                        {'href': masking.mask_href(str(image_href)),
                         'format': fmt, 'expected': expected_format})
        elif _declared(expected_format) == 'raw':
            return 'raw'
    return fmt


def qemu_name(fmt):
    """The name qemu-img knows a format by.

    qemu-img has no ``gpt`` or ``iso`` driver: both are raw to it.

    :param fmt: a detected (inspector) or declared (Glance) format name.
    :returns: the qemu-img format name (``raw``, ``qcow2``, ``vpc``...).
    """
    fmt = _declared(fmt)
    return _QEMU_NAMES.get(fmt, fmt)


def check_vmdk_image(image_id, data):
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
    _check_vmdk_create_type(create_type, image_id)


def _check_qemu_view(data, src_format, image_href):
    """Check qemu-img's view of an image: defence in depth."""
    if not data.file_format:
        _refuse(exception.ImageUnacceptable, image_href, 'format',
                _('qemu-img found no format'))
    if (src_format and CONF.image_format.require_format_match
            and data.file_format != qemu_name(src_format)):
        _refuse(exception.ImageUnacceptable, image_href, 'format_match',
                _('qemu-img reports %(found)s, declared as %(expected)s') %
                {'found': data.file_format, 'expected': src_format})
    if data.backing_file is not None:
        _refuse(exception.InvalidImage, image_href, 'backing_file',
                _('qemu-img reports a backing file'))
    specific = (data.format_specific or {}).get('data') or {}
    if specific.get('data-file') is not None:
        _refuse(exception.InvalidImage, image_href, 'data_file',
                _('qemu-img reports an external data file'))
    check_vmdk_image(image_href, data)


def check_image_format(source, src_format=None, image_id=None, data=None):
    """Check an image file's format, as Cinder's function of that name.

    Without ``data``, the file is first inspected and passed through
    :func:`check_image` (so qemu-img never opens an unsafe file), then
    ``qemu-img info -f <detected format>`` gives its own view. Either
    view of qemu-img is then checked: it found a format, the one declared
    as ``src_format`` if any, with no backing file, no external data file
    and an allowed VMDK create type.

    :param source: the image file.
    :param src_format: the declared format, or None.
    :param image_id: the image's id or href, for messages (default:
        ``source``).
    :param data: an :class:`oslo_utils.imageutils.QemuImgInfo` of the
        image, or None to inspect it and run qemu-img info.
    :returns: the :class:`~oslo_utils.imageutils.QemuImgInfo` checked.
    :raises: InvalidImage, ImageUnacceptable (see :func:`check_image`);
        ImageNotFound if ``source`` does not exist.
    """
    image_href = image_id or source
    if data is None:
        # Imported here: both modules import this one.
        from ironic_images import inspection
        from ironic_images import qemu_img

        detected = inspection.inspect_file(source, image_href)
        fmt = check_image(detected, image_href, src_format)
        data = qemu_img.qemu_img_info(source, qemu_name(fmt), image_href)
    _check_qemu_view(data, src_format, image_href)
    return data


def check_virtual_size(virtual_size, volume_size, image_id):
    """Refuse an image whose virtual size does not fit in a volume.

    As Cinder's: the virtual size in bytes is rounded up to GiB and
    compared with the volume size in GiB.

    :param virtual_size: the image's virtual size, in bytes.
    :param volume_size: the volume's size, in GiB (None: no limit).
    :param image_id: the image's id or href, for messages.
    :returns: the virtual size in GiB, rounded up.
    :raises: ImageUnacceptable when the size is unknown or too large.
    """
    try:
        size = float(virtual_size)
        size_gib = int(math.ceil(size / units.Gi))
    except (TypeError, ValueError, OverflowError):
        _refuse(exception.ImageUnacceptable, image_id, 'virtual_size',
                _('the virtual size %r is not known') % (virtual_size,))
    if size < 0:
        _refuse(exception.ImageUnacceptable, image_id, 'virtual_size',
                _('the virtual size %r is negative') % (virtual_size,))
    if volume_size is not None and size_gib > volume_size:
        _refuse(exception.ImageUnacceptable, image_id, 'virtual_size',
                _("image virtual size is %(image)dGB and doesn't fit in a "
                  "volume of size %(volume)dGB") % {
                      'image': size_gib, 'volume': volume_size})
    return size_gib
