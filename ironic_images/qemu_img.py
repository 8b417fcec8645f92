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

"""qemu-img under limits: info, conversion, resize and version checks.

Every qemu-img process runs through
:func:`oslo_concurrency.processutils.execute` with an address-space cap
(``[image_convert]memory_limit_mb``) and, for ``info``, a CPU-time cap
(``[image_convert]cpu_time_limit_s``), always with an explicit ``-f`` so
qemu-img never guesses the format of untrusted data. What ``qemu-img info``
reports is checked again (backing file, external data file, VMDK create
type) even though the format inspector should already have refused such
an image: defence in depth against an inspector gap.

A conversion writes into a temp file beside its destination, inspects the
result and renames it only when it is the requested format, so the
destination is either a complete, checked image or untouched.
"""

import ctypes
import errno
import functools
import mmap
import os
import re
import signal
import time

from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import imageutils
from oslo_utils import units
import tenacity

from ironic_images._i18n import _
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images import fileutils
from ironic_images import inspection

LOG = logging.getLogger(__name__)

# Glance / Cinder disk format names that qemu-img spells differently, and
# the format inspector's "gpt": a partitioned disk is raw to qemu-img.
_TO_QEMU = {'iso': 'raw', 'gpt': 'raw', 'vhd': 'vpc', 'ploop': 'parallels'}
# qemu-img names back to the conventional ones. Unlike Cinder's inverted
# map, "raw" stays "raw": both "iso" and "raw" become qemu-img's "raw", and
# calling every raw image an ISO would be wrong.
_FROM_QEMU = {'vpc': 'vhd', 'parallels': 'ploop'}

# Output formats (qemu-img names) and the subformats that keep the image
# in one file: a multi-file subformat (VMDK monolithicFlat, twoGbMaxExtent*)
# would point outside the file we rename, and is refused on input anyway.
_OUTPUT_SUBFORMATS = {
    'raw': (),
    'qcow2': (),
    'vmdk': ('monolithicSparse', 'streamOptimized'),
    'vpc': ('dynamic', 'fixed'),
    'vhdx': ('dynamic', 'fixed'),
}

# What the format inspector may call a correct output of each format. A
# raw disk that starts with a partition table or an ISO 9660 volume is
# still raw; anything else (a raw output that looks like qcow2, say) means
# the guest data could be mistaken for an image header later, and is
# refused.
_EXPECTED_DETECTION = {
    'raw': ('raw', 'gpt', 'iso'),
    'qcow2': ('qcow2',),
    'vmdk': ('vmdk',),
    'vpc': ('vhd',),
    'vhdx': ('vhdx',),
}
# A fixed VHD is raw data followed by a footer that the inspector does not
# read, so it is detected as what the raw data looks like.
_EXPECTED_DETECTION_FIXED_VHD = _EXPECTED_DETECTION['raw'] + ('vhd',)

# Messages of failures that may pass: the host was short of memory or of
# threads at that moment (qemu prints strerror(ENOMEM) / strerror(EAGAIN)).
_TRANSIENT_ERRNOS = (errno.ENOMEM, errno.EAGAIN)
_TRANSIENT_MESSAGES = tuple(os.strerror(e) for e in _TRANSIENT_ERRNOS)

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


def _reason(error):
    """A short reason for a failed qemu-img run, from its stderr."""
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


def _local(path):
    """An absolute path, which qemu-img cannot take for anything else.

    qemu-img reads ``json:{...}`` and ``PROTOCOL:...`` (nbd, http, ...)
    file names as instructions to open something else; a path that starts
    with ``/`` is always a plain local file.
    """
    return os.path.abspath(path)


def _execute(*args, cpu_time=True):
    """Run qemu-img with the caps, in the C locale so errors are stable."""
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


def _gate(source, format, image_href):
    """Pass a source through the safety gate before qemu-img opens it.

    ``qemu-img -f raw`` never interprets the data, so a raw source needs
    no gate (a raw volume may hold anything, a qcow2 header included).
    Any other format is inspected and must pass
    :func:`ironic_images.inspection.check_image`, as a fetched image does:
    qemu-img follows what a qcow2 or VMDK header names (backing files,
    data files, extents) as soon as it opens the file, even for ``info``.

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
        out, _err = _execute('info', '-f', qemu_format, '--output=json',
                             '--force-share', _local(path))
    except (processutils.ProcessExecutionError, OSError) as e:
        raise exception.ImageUnacceptable(
            image_href=image_href,
            reason=_('qemu-img info failed: %s') % _reason(e))
    try:
        info = imageutils.QemuImgInfo(out, format='json')
    except (ValueError, TypeError, AttributeError) as e:
        raise exception.ImageUnacceptable(
            image_href=image_href,
            reason=_('cannot parse qemu-img info output: %s') % e)
    _check_info(info, qemu_format, image_href)
    return info


@functools.lru_cache(maxsize=64)
def _supports_direct_io(directory):
    """Tell whether files in ``directory`` can be written with O_DIRECT.

    Probed once per directory (cached) by writing one aligned block to a
    temp file opened with O_DIRECT: some file systems accept the flag at
    open time and fail the first write with EINVAL.
    """
    if not hasattr(os, 'O_DIRECT'):
        return False
    path = None
    try:
        path = fileutils.part_path(os.path.join(directory, 'odirect-probe'))
        fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
        try:
            # An anonymous mmap is page-aligned, as O_DIRECT requires.
            with mmap.mmap(-1, mmap.PAGESIZE) as block:
                os.write(fd, block)
        finally:
            os.close(fd)
    except OSError as e:
        LOG.debug('No direct I/O in %(dir)s (%(err)s); converting with the '
                  'page cache', {'dir': directory, 'err': e})
        return False
    finally:
        if path:
            fileutils.remove_quietly(path)
    return True


def _convert_command(source, part, src_format, out_format, out_subformat):
    cmd = ['convert', '-f', src_format, '-O', out_format, '-W',
           '-m', str(CONF.image_convert.coroutines), '-S', '4k']
    if out_subformat:
        cmd += ['-o', 'subformat=%s' % out_subformat]
    # Direct I/O keeps a big conversion from flooding the page cache and
    # is the fastest path; without it qemu-img's default (writeback, no
    # flushes) is used and we fsync at the end.
    if _supports_direct_io(os.path.dirname(part)):
        cmd += ['-t', 'none']
    return cmd + [_local(source), part]


def _is_transient(error):
    """Tell whether a failed conversion is worth another attempt."""
    if isinstance(error, processutils.ProcessExecutionError):
        text = '%s %s' % (error.stderr or '', error.stdout or '')
        return any(message in text for message in _TRANSIENT_MESSAGES)
    return isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS


def _run_conversion(cmd):
    """Run qemu-img convert, again on ENOMEM/EAGAIN-like failures."""
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(CONF.image_convert.attempts),
        wait=tenacity.wait_exponential(multiplier=1, max=10),
        retry=tenacity.retry_if_exception(_is_transient),
        before_sleep=lambda state: LOG.warning(
            'qemu-img convert failed (attempt %(n)d), retrying: %(err)s',
            {'n': state.attempt_number,
             'err': _reason(state.outcome.exception())}),
        reraise=True)
    # Conversions get the memory cap only: their CPU time grows with the
    # image, so any fixed CPU cap would fail a big enough legitimate image.
    retrying(_execute, *cmd, cpu_time=False)


def _check_output(part, qemu_out, out_subformat, image_href):
    """Inspect the converted file: it must be the requested format."""
    try:
        detected = inspection.inspect_file(part, image_href=image_href)
    except exception.IronicImagesException as e:
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('the output failed inspection: %s') % e)
    if qemu_out == 'vpc' and out_subformat == 'fixed':
        expected = _EXPECTED_DETECTION_FIXED_VHD
    else:
        expected = _EXPECTED_DETECTION[qemu_out]
    if detected.format not in expected:
        # No format when several matched (say, an ISO with a qcow2 header).
        found = detected.format or '+'.join(
            getattr(detected, 'matches', ())) or _('unknown')
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('the output was detected as %(found)s, not '
                     '%(expected)s') % {
                'found': found,
                'expected': from_qemu_img_disk_format(qemu_out)})


def _validate_convert_args(src_format, out_format, out_subformat,
                           image_href):
    def refuse(reason):
        raise exception.ImageConvertFailed(image_href=image_href,
                                           reason=reason)

    if not src_format:
        refuse(_('the source format must be given; qemu-img never guesses '
                 'it'))
    # Named before translation: "iso" would become raw, which is not what
    # a caller asking for an ISO means.
    qemu_out = fixup_disk_format(out_format)
    if out_format not in _OUTPUT_SUBFORMATS and out_format != 'vhd':
        refuse(_('output format %(fmt)s is not supported (supported: '
                 '%(supported)s)') % {
            'fmt': out_format,
            'supported': ', '.join(sorted(_OUTPUT_SUBFORMATS) + ['vhd'])})
    subformats = _OUTPUT_SUBFORMATS[qemu_out]
    if out_subformat and out_subformat not in subformats:
        refuse(_('subformat %(sub)s of %(fmt)s is not supported (supported: '
                 '%(supported)s)') % {
            'sub': out_subformat, 'fmt': out_format,
            'supported': ', '.join(subformats) if subformats else _('none')})
    return fixup_disk_format(src_format), qemu_out


def convert_image(source, dest, out_format, src_format, out_subformat=None,
                  image_href=None, source_info=None):
    """Convert an image with qemu-img, atomically.

    Unless ``source_info`` is given, ``source`` first passes the safety
    gate of :func:`ironic_images.inspection.check_image` (format
    inspection, safety checks, ``[image_format]permitted_formats``, the
    declared format; not for a raw source, which qemu-img never
    interprets) and :func:`qemu_img_info`. Then it runs ``qemu-img
    convert -f SRC -O OUT -W -m N -S 4k`` (``-t none`` when the
    destination's directory supports direct I/O) under the memory cap
    into a temp file beside ``dest``, retried up to
    ``[image_convert]attempts`` times on ENOMEM/EAGAIN-like failures,
    inspects the result, which must be the requested format, then fsyncs it
    and renames it to ``dest``. On any failure nothing is left at ``dest``
    (an existing file there is kept) and no temp file remains.

    :param source: the source image file.
    :param dest: the output path.
    :param out_format: raw, qcow2, vmdk, vhd (or vpc) or vhdx.
    :param src_format: the source's format (Glance or qemu-img name);
        required.
    :param out_subformat: ``-o subformat=``: monolithicSparse or
        streamOptimized for vmdk, dynamic or fixed for vhd and vhdx.
    :param image_href: the image's href, for messages (default:
        ``source``).
    :param source_info: the result of :func:`qemu_img_info` for
        ``source``, from a caller that has passed it through the safety
        gate already (as :mod:`ironic_images.image_fetch` does); both
        checks are then skipped.
    :raises: ImageConvertFailed when an argument is not supported,
        qemu-img fails or hits a limit, or the output is not the requested
        format.
    :raises: InvalidImage, ImageUnacceptable, ImageNotFound from the
        safety gate and :func:`qemu_img_info`.
    """
    image_href = image_href or source
    qemu_src, qemu_out = _validate_convert_args(
        src_format, out_format, out_subformat, image_href)
    if source_info is None:
        qemu_src = _gate(source, src_format, image_href)
        qemu_img_info(source, qemu_src, image_href=image_href)

    try:
        part = fileutils.part_path(dest)
    except OSError as e:
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('cannot create a file beside %(dest)s: %(err)s') % {
                'dest': dest, 'err': e})
    started = time.monotonic()
    try:
        cmd = _convert_command(source, part, qemu_src, qemu_out,
                               out_subformat)
        try:
            _run_conversion(cmd)
        except (processutils.ProcessExecutionError, OSError) as e:
            raise exception.ImageConvertFailed(
                image_href=image_href,
                reason=_('qemu-img convert failed: %s') % _reason(e))
        _check_output(part, qemu_out, out_subformat, image_href)
        try:
            _fsync(part)
            fileutils.commit(part, dest)
        except OSError as e:
            raise exception.ImageConvertFailed(
                image_href=image_href,
                reason=_('cannot store the output at %(dest)s: %(err)s') % {
                    'dest': dest, 'err': e})
    except BaseException:
        fileutils.remove_quietly(part)
        raise
    LOG.info('Converted %(src)s (%(sfmt)s) to %(dest)s (%(ofmt)s) in '
             '%(sec).2f s', {'src': source, 'sfmt': qemu_src, 'dest': dest,
                             'ofmt': qemu_out,
                             'sec': time.monotonic() - started})


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    qemu_format = _gate(source, file_format, image_href)
    qemu_img_info(source, qemu_format, image_href=image_href)
    try:
        _execute('resize', '-f', qemu_format, _local(source), str(size))
    except (processutils.ProcessExecutionError, OSError) as e:
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('qemu-img resize failed: %s') % _reason(e))


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
