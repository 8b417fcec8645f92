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
:mod:`ironic_images.formats.inspection` has inspected may go on, and as which
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
import typing

from oslo_log import log as logging
from oslo_utils.imageutils import format_inspector
from oslo_utils import units

from ironic_images._i18n import _
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.formats import names as formats

LOG = logging.getLogger(__name__)

#: The stages of :func:`check_image`, in order, and the check names each
#: may fail with; None stands for the format inspector's own safety checks
#: (backing_file, data_file, ... : any name no other stage has).
STAGES = (
    ('single_format', ('single_format',)),
    ('vmdk', ('vmdk_allowed_types', 'vmdk_descriptor_file')),
    ('safety', None),
    ('permitted_formats', ('permitted_formats',)),
    ('format_match', ('format_match',)),
)


def stage_of(check: str) -> str:
    """The stage of :data:`STAGES` a failed check belongs to.

    :param check: a check name, as a refusal's ``kwargs['check']``.
    :returns: a stage name.
    """
    for stage, names in STAGES:
        if names is not None and check in names:
            return stage
    return 'safety'


def refuse(cls: typing.Type[exception.ImageUnacceptable], image_href: str,
           check: str, detail: str) -> typing.NoReturn:
    """Log a refusal and raise it, naming the check that failed.

    :param cls: InvalidImage (unsafe or broken) or ImageUnacceptable (not
        wanted by the configuration).
    :param image_href: the image, for messages (masked).
    :param check: the name of the check, also in ``kwargs['check']``.
    :param detail: what was found.
    :raises: ``cls``, always.
    """
    LOG.error('Security: image %(href)s is refused, %(check)s check '
              'failed: %(detail)s',
              {'href': masking.mask_href(str(image_href)), 'check': check,
               'detail': detail})
    raise cls(image_href=image_href, check=check,
              reason=_('%(check)s check failed: %(detail)s') % {
                  'check': check, 'detail': detail})


def format_matches(actual: str, expected: str) -> bool:
    """Tell whether a detected format is what was declared.

    A declared raw (or aki, ari, ami) accepts raw and gpt; ``vpc`` is
    ``vhd``. An ISO that carries a GPT was already detected as ``iso``.

    :param actual: the detected format (inspector name).
    :param expected: the declared format (Glance or qemu-img name).
    :returns: True if they match.
    """
    return formats.matches_declared(actual, expected)


def permitted_formats() -> typing.Set[str]:
    """The formats ``[image_format]permitted_formats`` lets through.

    As in Ironic, permitting raw permits gpt (a whole-disk image).

    :returns: a set of inspector format names.
    """
    permitted = set(f.strip().lower()
                    for f in CONF.image_format.permitted_formats)
    if 'raw' in permitted:
        permitted |= formats.RAW_FORMATS
    return permitted


def check_vmdk_create_type(create_type: typing.Optional[str],
                           image_href: str) -> None:
    """Refuse a VMDK create type outside ``vmdk_allowed_types``.

    :param create_type: the descriptor's createType, or None.
    :param image_href: the image, for messages.
    :raises: InvalidImage (check ``vmdk_allowed_types``).
    """
    allowed = CONF.image_format.vmdk_allowed_types
    if (create_type or '').lower() not in {t.lower() for t in allowed}:
        refuse(exception.InvalidImage, image_href, 'vmdk_allowed_types',
               _('VMDK create type %(type)s is not one of %(allowed)s') % {
                   'type': create_type or _('unknown'),
                   'allowed': ', '.join(allowed)})


def _check_vmdk(inspector, image_href):
    check_vmdk_create_type(getattr(inspector, 'vmdktype', None),
                           image_href)
    if not inspector.has_region('header'):
        # A descriptor file with no sparse header: monolithicSparse and
        # streamOptimized images always embed their descriptor, and a
        # separate one names its extents as other files (oslo refuses
        # paths, but not a sibling file of the image, e.g. another image
        # of the cache).
        refuse(exception.InvalidImage, image_href, 'vmdk_descriptor_file',
               _('a VMDK descriptor file is refused; only VMDK images '
                 'with an embedded descriptor are accepted'))


def _safety_check(detected, image_href):
    fmt = detected.format
    if fmt in detected.errors:
        refuse(exception.InvalidImage, image_href, 'parse',
               _('the %(format)s structures cannot be parsed: %(error)s') %
               {'format': fmt, 'error': detected.errors[fmt]})
    try:
        detected.inspector.safety_check()
    except format_inspector.SafetyCheckFailed as e:
        names = sorted(e.failures)
        refuse(exception.InvalidImage, image_href, ','.join(names),
               '; '.join(str(e.failures[n]) for n in names))
    except format_inspector.ImageFormatError as e:
        # Raised for an inspector that did not get every region it needs:
        # a truncated image, or structures that point past the end.
        refuse(exception.InvalidImage, image_href, 'complete',
               _('the %(format)s image is incomplete: %(error)s') % {
                   'format': fmt, 'error': e})
    except Exception as e:
        refuse(exception.InvalidImage, image_href, 'parse',
               _('the %(format)s safety check crashed: %(error)s') % {
                   'format': fmt, 'error': e})


def check_image(detected, image_href: str,
                expected_format: typing.Optional[str] = None) -> str:
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

    :param detected: a :class:`ironic_images.formats.inspection.DetectedImage`.
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
        refuse(exception.InvalidImage, image_href, 'single_format',
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
        refuse(exception.ImageUnacceptable, image_href, 'permitted_formats',
               _('format %(format)s is not one of %(permitted)s') % {
                   'format': fmt, 'permitted': ', '.join(sorted(permitted))})
    if expected_format:
        if not format_matches(fmt, expected_format):
            if CONF.image_format.require_format_match:
                refuse(exception.ImageUnacceptable, image_href,
                       'format_match',
                       _('the image is %(format)s, declared as '
                         '%(expected)s') % {'format': fmt,
                                            'expected': expected_format})
            LOG.warning('Image %(href)s is %(format)s, declared as '
                        '%(expected)s; accepted as '
                        '[image_format]require_format_match is False.',
                        {'href': masking.mask_href(str(image_href)),
                         'format': fmt, 'expected': expected_format})
        elif formats.canonical(expected_format) == 'raw':
            return 'raw'
    return fmt


def check_virtual_size(virtual_size: typing.Optional[int],
                       volume_size: typing.Optional[int],
                       image_id: str) -> int:
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
        refuse(exception.ImageUnacceptable, image_id, 'virtual_size',
               _('the virtual size %r is not known') % (virtual_size,))
    if size < 0:
        refuse(exception.ImageUnacceptable, image_id, 'virtual_size',
               _('the virtual size %r is negative') % (virtual_size,))
    if volume_size is not None and size_gib > volume_size:
        refuse(exception.ImageUnacceptable, image_id, 'virtual_size',
               _("image virtual size is %(image)dGB and doesn't fit in a "
                 "volume of size %(volume)dGB") % {
                   'image': size_gib, 'volume': volume_size})
    return size_gib
