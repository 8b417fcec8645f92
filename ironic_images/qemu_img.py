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

"""qemu-img under limits: format names, info, resize and version checks.

Conversion is in :mod:`ironic_images.qemu_convert`; its
:func:`~ironic_images.qemu_convert.convert_image` is importable from here
too. Every qemu-img process runs through
:func:`oslo_concurrency.processutils.execute` with an address-space cap
(``[image_convert]memory_limit_mb``) and, for ``info``, a CPU-time cap
(``[image_convert]cpu_time_limit_s``), always with an explicit ``-f`` so
qemu-img never guesses the format of untrusted data. What ``qemu-img info``
reports is checked again (backing file, external data file, VMDK create
type) even though the format inspector should already have refused such
an image: defence in depth against an inspector gap.
"""

import ctypes
import os
import re
import signal

from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import imageutils
from oslo_utils import units

from ironic_images._i18n import _
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images import inspection

LOG = logging.getLogger(__name__)

# Glance / Cinder disk format names that qemu-img spells differently, and
# the format inspector's "gpt": a partitioned disk is raw to qemu-img.
_TO_QEMU = {'iso': 'raw', 'gpt': 'raw', 'vhd': 'vpc', 'ploop': 'parallels'}
# qemu-img names back to the conventional ones. Unlike Cinder's inverted
# map, "raw" stays "raw": both "iso" and "raw" become qemu-img's "raw", and
# calling every raw image an ISO would be wrong.
_FROM_QEMU = {'vpc': 'vhd', 'parallels': 'ploop'}

# Longest part of qemu-img's stderr kept in an exception message.
_MAX_REASON = 1000

_VERSION_RE = re.compile(r'qemu-img version (\d+(?:\.\d+)*)')
_qemu_img_version = None


def fixup_disk_format(disk_format):
    """Return the format name qemu-img understands for a disk format.

    Glance and Cinder say ``vhd``, ``iso`` and ``ploop``; qemu-img says
    ``vpc``, ``raw`` and ``parallels``. The format inspector's ``gpt`` is
    ``raw`` too. Other names pass unchanged.

    :param disk_format: a disk format name, e.g. ``vhd``.
    :returns: the qemu-img name, e.g. ``vpc``.
    """
    return _TO_QEMU.get(disk_format, disk_format)


def from_qemu_img_disk_format(disk_format):
    """Return the conventional disk format name for a qemu-img one.

    ``vpc`` becomes ``vhd`` and ``parallels`` becomes ``ploop``; other names
    (including ``raw``) pass unchanged.

    :param disk_format: a qemu-img format name, e.g. ``vpc``.
    :returns: the conventional name, e.g. ``vhd``.
    """
    return _FROM_QEMU.get(disk_format, disk_format)


def _limits(cpu_time=True):
    """The resource caps of a qemu-img process, from ``[image_convert]``."""
    return processutils.ProcessLimits(
        address_space=CONF.image_convert.memory_limit_mb * units.Mi,
        cpu_time=CONF.image_convert.cpu_time_limit_s if cpu_time else None)


def failure_reason(error):
    """A short reason for a failed qemu-img run, from its stderr.

    :param error: what :func:`execute` raised.
    :returns: one line, at most about 1000 characters.
    """
    if isinstance(error, processutils.ProcessExecutionError):
        text = (error.stderr or error.stdout or '').strip()
        code = error.exit_code
        if isinstance(code, int) and code < 0:
            # Killed by a signal: SIGXCPU when the CPU-time cap is hit,
            # SIGABRT when an allocation fails under the memory cap.
            text = _('qemu-img was killed by signal %(sig)d (resource '
                     'limit reached?) %(err)s') % {'sig': -code, 'err': text}
        elif not text:
            text = _('qemu-img exited with code %s') % code
    else:
        text = str(error)
    text = ' '.join(text.split())
    if len(text) > _MAX_REASON:
        text = '...' + text[-_MAX_REASON:]
    return text


def local_path(path):
    """An absolute path, which qemu-img cannot take for anything else.

    qemu-img reads ``json:{...}`` and ``PROTOCOL:...`` (nbd, http, ...)
    file names as instructions to open something else; a path that starts
    with ``/`` is always a plain local file.

    :param path: a file name.
    :returns: it, absolute.
    """
    return os.path.abspath(path)


def execute(*args, cpu_time=True):
    """Run qemu-img with the caps, in the C locale so errors are stable.

    :param args: qemu-img's arguments; paths made absolute
        (:func:`local_path`).
    :param cpu_time: apply ``[image_convert]cpu_time_limit_s`` too.
    :returns: ``(stdout, stderr)``.
    :raises: ProcessExecutionError, OSError: callers map them to one of
        our exceptions, with :func:`failure_reason`.
    """
    # glibc gives threads their own malloc arenas, each reserving 64 MiB of
    # address space, up to 8 per CPU: on a large host qemu-img's I/O
    # threads would hit the address-space cap without using the memory.
    # Three arenas is what Ironic settled on for the same reason.
    env = dict(os.environ, LC_ALL='C', LANG='C', MALLOC_ARENA_MAX='3')
    return processutils.execute('qemu-img', *args, prlimit=_limits(cpu_time),
                                env_variables=env,
                                preexec_fn=_die_with_parent)


_PR_SET_PDEATHSIG = 1


def _load_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: a conversion just runs to its end


# Looked up once, here: the child must not dlopen() between fork and exec,
# where a loader lock held by another thread of the parent never unlocks.
_prctl = _load_prctl()


def _die_with_parent():
    """In the child: be killed when the process that started it dies.

    A conversion whose caller was killed would otherwise run on, writing a
    temp file nobody will rename (the next fetch removes it).
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def check_source(source, format, image_href):
    """Pass a source through the safety gate before qemu-img opens it.

    For :func:`resize_image` and
    :func:`ironic_images.qemu_convert.convert_image`.

    ``qemu-img -f raw`` never interprets the data, so a raw source needs
    no gate (a raw volume may hold anything, a qcow2 header included).
    Any other format is inspected and must pass
    :func:`ironic_images.inspection.check_image`, as a fetched image does:
    qemu-img follows what a qcow2 or VMDK header names (backing files,
    data files, extents) as soon as it opens the file, even for ``info``.

    :param source: the image file.
    :param format: its declared format (Glance or qemu-img name).
    :param image_href: the image's href, for messages.
    :returns: the qemu-img name of the format the gate accepted.
    :raises: InvalidImage, ImageUnacceptable, ImageNotFound.
    """
    qemu_format = fixup_disk_format(format)
    if qemu_format == 'raw':
        return qemu_format
    detected = inspection.inspect_file(source, image_href)
    return fixup_disk_format(
        inspection.check_image(detected, image_href, format))


def _check_info(info, qemu_format, image_href):
    """Check qemu-img's view of an image again: defence in depth.

    :raises: InvalidImage naming the check that failed.
    """
    def refuse(check, detail):
        raise exception.InvalidImage(
            image_href=image_href,
            reason=_('%(check)s check failed: %(detail)s') % {
                'check': check, 'detail': detail})

    if info.file_format != qemu_format:
        refuse(_('format'), _('qemu-img reports %(found)s, expected '
                              '%(expected)s') % {'found': info.file_format,
                                                 'expected': qemu_format})
    if info.backing_file is not None:
        refuse(_('backing file'),
               _('the image has a backing file %s') % info.backing_file)
    specific = info.format_specific or {}
    data = specific.get('data') or {}
    if data.get('data-file') is not None:
        refuse(_('data file'), _('the image has an external data file '
                                 '%s') % data['data-file'])
    if qemu_format == 'vmdk':
        create_type = data.get('create-type')
        allowed = CONF.image_format.vmdk_allowed_types
        if create_type not in allowed:
            refuse(_('vmdk create type'),
                   _('create type %(type)s is not one of %(allowed)s') % {
                       'type': create_type, 'allowed': ', '.join(allowed)})


def qemu_img_info(path, format, image_href=None):
    """Return qemu-img's view of an image, checked again.

    Runs ``qemu-img info -f FORMAT --output=json --force-share`` under the
    address-space and CPU-time caps of ``[image_convert]``, parses it with
    :class:`oslo_utils.imageutils.QemuImgInfo`, then refuses what the
    format inspector should already have refused: a backing file, an
    external data file, a VMDK create type outside
    ``[image_format]vmdk_allowed_types``.

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
    qemu_format = fixup_disk_format(format)
    try:
        out, _err = execute('info', '-f', qemu_format, '--output=json',
                            '--force-share', local_path(path))
    except (processutils.ProcessExecutionError, OSError) as e:
        raise exception.ImageUnacceptable(
            image_href=image_href,
            reason=_('qemu-img info failed: %s') % failure_reason(e))
    try:
        info = imageutils.QemuImgInfo(out, format='json')
    except (ValueError, TypeError, AttributeError) as e:
        raise exception.ImageUnacceptable(
            image_href=image_href,
            reason=_('cannot parse qemu-img info output: %s') % e)
    _check_info(info, qemu_format, image_href)
    return info


def resize_image(source, size, file_format, image_href=None):
    """Change the virtual size of an image in place.

    The image passes the safety gate (as in :func:`convert_image`) and
    :func:`qemu_img_info` first, then
    ``qemu-img resize -f FORMAT`` runs under the caps. Shrinking is
    refused by qemu-img (no ``--shrink``), so no data is cut off.

    :param source: the image file.
    :param size: the new virtual size in bytes.
    :param file_format: its format (Glance or qemu-img name); required.
    :param image_href: the image's href, for messages (default:
        ``source``).
    :raises: ImageConvertFailed when the size is not a positive integer or
        qemu-img fails.
    :raises: InvalidImage, ImageUnacceptable, ImageNotFound from the
        safety gate and :func:`qemu_img_info`.
    """
    image_href = image_href or source
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('cannot resize to %r: the size must be a positive '
                     'number of bytes') % (size,))
    if not file_format:
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('the image format must be given; qemu-img never '
                     'guesses it'))
    qemu_format = check_source(source, file_format, image_href)
    qemu_img_info(source, qemu_format, image_href=image_href)
    try:
        execute('resize', '-f', qemu_format, local_path(source), str(size))
    except (processutils.ProcessExecutionError, OSError) as e:
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('qemu-img resize failed: %s') % failure_reason(e))


def get_qemu_img_version():
    """Return the version of qemu-img, e.g. ``[7, 2, 22]``.

    Cached until the process restarts once found.

    :returns: the version as a list of ints, or None when qemu-img is
        missing or does not say its version.
    """
    global _qemu_img_version
    if _qemu_img_version is not None:
        return _qemu_img_version
    try:
        out, _err = processutils.execute('qemu-img', '--version',
                                         check_exit_code=False)
    except OSError as e:
        LOG.warning('qemu-img is not available: %s', e)
        return None
    match = _VERSION_RE.search(out)
    if not match:
        LOG.warning('Cannot tell the version of qemu-img from %r', out[:200])
        return None
    _qemu_img_version = [int(part) for part in match.group(1).split('.')]
    return _qemu_img_version


def check_qemu_img_version(minimum_version):
    """Require qemu-img of at least a version.

    :param minimum_version: e.g. ``'2.10'``.
    :raises: OperationNotSupported when qemu-img is missing or older.
    """
    found = get_qemu_img_version()
    required = [int(part) for part in str(minimum_version).split('.')]
    if found is None or found < required:
        raise exception.OperationNotSupported(
            _('qemu-img %(required)s or later is required; found '
              '%(found)s') % {
                'required': minimum_version,
                'found': '.'.join(map(str, found)) if found else _('none')})


def __getattr__(name):
    # The conversion module imports this one: resolved on first use, so
    # that either module may be imported first.
    if name == 'convert_image':
        from ironic_images import qemu_convert
        return qemu_convert.convert_image
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
