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

"""qemu-img convert: atomic, checked, retried, under the memory cap.

A conversion writes into a temp file beside its destination
(:func:`ironic_images.common.fileutils.part_path`), inspects the result
and renames it only when it is the requested format, so the destination
is either a complete, checked image or untouched. The source passes the
safety gate (:mod:`ironic_images.formats.gate`) and ``qemu-img info``
(:mod:`ironic_images.qemu.info`) first.

A raw disk is written onto a block device in place (``qemu-img convert
-n``, ``-t none`` where the device takes direct I/O) after a check that it
fits; any other format for a device, and any format for a stream, is
converted into a temp file in ``[DEFAULT]tempdir`` and copied onto it. A
failure once the writing started is
:class:`~ironic_images.exception.DestinationUndefined`.
"""

import errno
import mmap
import os
import time
import typing

from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import imageutils
import tenacity

from ironic_images._i18n import _
from ironic_images.common import destinations
from ironic_images.common import fileutils
from ironic_images.common import tempfiles
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.formats import inspection
from ironic_images.formats import names as formats
from ironic_images.qemu import info as qemu_info
from ironic_images.qemu import process
from ironic_images.qemu import progress as qemu_progress
from ironic_images.sink import destination

LOG = logging.getLogger(__name__)

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

# A fixed VHD is raw data followed by a footer that the inspector does not
# read, so it is detected as what the raw data looks like.
_FIXED_VHD = ('vpc', 'fixed')


# Messages of failures that may pass: the host was short of memory or of
# threads at that moment (qemu prints strerror(ENOMEM) / strerror(EAGAIN)).
_TRANSIENT_ERRNOS = (errno.ENOMEM, errno.EAGAIN)
_TRANSIENT_MESSAGES = tuple(os.strerror(e) for e in _TRANSIENT_ERRNOS)


# Directory -> whether its file system takes O_DIRECT. Only the file
# system's own answer is kept: a probe that failed for another reason (no
# space, no permission, an I/O error) is made again next time.
_DIRECT_IO_ANSWERS = {}
_NO_DIRECT_IO_ERRNOS = (errno.EINVAL, errno.EOPNOTSUPP)


def _device_takes_direct_io(device):
    """Tell whether a block device opens with O_DIRECT (most do)."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_DIRECT | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return False
    os.close(fd)
    return True


def _supports_direct_io(directory):
    """Tell whether files in ``directory`` can be written with O_DIRECT.

    Probed by writing one aligned block to a temp file opened with
    O_DIRECT (some file systems accept the flag at open time and fail the
    first write with EINVAL); the file system's answer is remembered.
    """
    if not hasattr(os, 'O_DIRECT'):
        return False
    answer = _DIRECT_IO_ANSWERS.get(directory)
    if answer is not None:
        return answer
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
        if e.errno in _NO_DIRECT_IO_ERRNOS:
            _DIRECT_IO_ANSWERS[directory] = False
        return False
    finally:
        if path:
            fileutils.remove_quietly(path)
    _DIRECT_IO_ANSWERS[directory] = True
    return True


def _convert_command(source, part, src_format, out_format, out_subformat,
                     device=False):
    cmd = ['convert', '-f', src_format, '-O', out_format, '-W',
           '-m', str(CONF.image_convert.coroutines), '-S', '4k']
    if out_subformat:
        cmd += ['-o', 'subformat=%s' % out_subformat]
    if device:
        # Onto the device as it is: no create, no truncation.
        cmd.append('-n')
    # Direct I/O keeps a big conversion from flooding the page cache and
    # is the fastest path; without it qemu-img's default (writeback, no
    # flushes) is used and we fsync at the end.
    if (_device_takes_direct_io(part) if device
            else _supports_direct_io(os.path.dirname(part))):
        cmd += ['-t', 'none']
    return cmd + [process.local_path(source), part]


def _is_transient(error):
    """Tell whether a failed conversion is worth another attempt."""
    if isinstance(error, processutils.ProcessExecutionError):
        text = '%s %s' % (error.stderr or '', error.stdout or '')
        return any(message in text for message in _TRANSIENT_MESSAGES)
    return isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS


def _run_conversion(cmd, image_href, watcher=None):
    """Run qemu-img convert, again on ENOMEM/EAGAIN-like failures.

    :raises: ImageConvertFailed with qemu-img's reason.
    """
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(CONF.image_convert.attempts),
        wait=tenacity.wait_exponential(multiplier=1, max=10),
        retry=tenacity.retry_if_exception(_is_transient),
        before_sleep=lambda state: LOG.warning(
            'qemu-img convert failed (attempt %(n)d), retrying: %(err)s',
            {'n': state.attempt_number,
             'err': process.failure_reason(state.outcome.exception())}),
        reraise=True)
    # Conversions get the memory cap only: their CPU time grows with the
    # image, so any fixed CPU cap would fail a big enough legitimate image.
    try:
        retrying(process.execute, *cmd, cpu_time=False, watcher=watcher)
    except (processutils.ProcessExecutionError, OSError) as e:
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('qemu-img convert failed: %s')
            % process.failure_reason(e))


def check_output(part: str, qemu_out: str,
                 out_subformat: typing.Optional[str],
                 image_href: str) -> None:
    """Inspect a converted file: it must be the requested format.

    A raw output that looks like another format (the guest's disk starts
    with a qcow2 header, say) is refused: it could be taken for that
    format later.

    :param part: the converted file.
    :param qemu_out: the qemu-img name of the requested format.
    :param out_subformat: the requested subformat, or None.
    :param image_href: the image, for messages.
    :raises: ImageConvertFailed when the output is another format or
        cannot be inspected.
    """
    try:
        detected = inspection.inspect_file(part, image_href=image_href)
    except exception.IronicImagesException as e:
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('the output failed inspection: %s') % e)
    expected = formats.detected_as(qemu_out)
    if (qemu_out, out_subformat) == _FIXED_VHD:
        expected += formats.detected_as('raw')
    if detected.format not in expected:
        # No format when several matched (say, an ISO with a qcow2 header).
        found = detected.format or '+'.join(
            getattr(detected, 'matches', ())) or _('unknown')
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('the output was detected as %(found)s, not '
                     '%(expected)s') % {
                'found': found,
                'expected': formats.from_qemu_name(qemu_out)})


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
    qemu_out = formats.qemu_name(out_format)
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
    return formats.qemu_name(src_format), qemu_out


def convert_image(source: str, dest: str, out_format: str, src_format: str,
                  out_subformat: typing.Optional[str] = None,
                  image_href: typing.Optional[str] = None,
                  source_info: typing.Optional[
                      imageutils.QemuImgInfo] = None,
                  progress: typing.Optional[
                      typing.Callable[[int, typing.Optional[int]],
                                      None]] = None) -> None:
    """Convert an image with qemu-img, atomically.

    Unless ``source_info`` is given, ``source`` first passes the safety
    gate of :func:`ironic_images.formats.gate.check_image` (format
    inspection, safety checks, ``[image_format]permitted_formats``, the
    declared format; not for a raw source, which qemu-img never
    interprets) and :func:`~ironic_images.qemu.info.qemu_img_info`. Then
    it runs ``qemu-img convert -f SRC -O OUT -W -m N -S 4k`` (``-t none``
    when the destination's directory supports direct I/O) under the
    memory cap into a temp file beside ``dest``, retried up to
    ``[image_convert]attempts`` times on ENOMEM/EAGAIN-like failures,
    inspects the result, which must be the requested format, then fsyncs
    it and renames it to ``dest``. On any failure nothing is left at ``dest``
    (an existing file there is kept) and no temp file remains.

    A block device at ``dest`` is written in place and a stream through
    a temp file (see the module's documentation).

    :param source: the source image file.
    :param dest: the output: a file (a symlink is followed), a block
        device or a stream.
    :param out_format: raw, qcow2, vmdk, vhd (or vpc) or vhdx.
    :param src_format: the source's format (Glance or qemu-img name);
        required.
    :param out_subformat: ``-o subformat=``: monolithicSparse or
        streamOptimized for vmdk, dynamic or fixed for vhd and vhdx.
    :param image_href: the image's href, for messages (default:
        ``source``).
    :param source_info: the result of
        :func:`~ironic_images.qemu.info.qemu_img_info` for ``source``,
        from a caller that has passed it through the safety gate already
        (as :mod:`ironic_images.fetch.fetcher` does); both checks are then
        skipped.
    :param progress: None, or ``progress(done, total)``, called from
        another thread while qemu-img runs with the bytes of the source
        it has read (:mod:`ironic_images.qemu.progress`), and once done.
    :raises: ImageConvertFailed when an argument is not supported,
        qemu-img fails or hits a limit, or the output is not the requested
        format.
    :raises: InvalidImage, ImageUnacceptable, ImageNotFound from the
        safety gate and :func:`~ironic_images.qemu.info.qemu_img_info`.
    :raises: ImageUnacceptable when a raw disk does not fit the device;
        InvalidDestination; DestinationUndefined (also an
        ImageConvertFailed) when the device or stream was written.
    """
    image_href = image_href or source
    qemu_src, qemu_out = _validate_convert_args(
        src_format, out_format, out_subformat, image_href)
    if source_info is None:
        qemu_src = qemu_info.check_source(source, src_format, image_href)
        source_info = qemu_info.qemu_img_info(source, qemu_src,
                                              image_href=image_href)
    try:
        target = destinations.classify(dest, image_href)
    except exception.InvalidDestination as e:
        raise exception.ImageConvertFailed(image_href=image_href,
                                           reason=e.kwargs['reason'])
    if target.kind == destinations.BLOCK and qemu_out == 'raw':
        _convert_onto_device(source, target, qemu_src, image_href,
                             source_info, progress)
        return
    if target.in_place:
        with tempfiles.temporary_dir() as scratch:
            converted = os.path.join(scratch, 'converted')
            convert_image(source, converted, out_format, qemu_src,
                          out_subformat, image_href, source_info, progress)
            destination.copy_to(converted, dest, image_href)
        return
    try:
        part = fileutils.part_path(target.target)
    except OSError as e:
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('cannot create a file beside %(dest)s: %(err)s') % {
                'dest': dest, 'err': e})
    started = time.monotonic()
    try:
        cmd = _convert_command(source, part, qemu_src, qemu_out,
                               out_subformat)
        watcher = _watcher(source, progress)
        _run_conversion(cmd, image_href, watcher)
        check_output(part, qemu_out, out_subformat, image_href)
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
    if watcher is not None:
        watcher.done()
    LOG.info('Converted %(src)s (%(sfmt)s) to %(dest)s (%(ofmt)s) in '
             '%(sec).2f s', {'src': source, 'sfmt': qemu_src, 'dest': dest,
                             'ofmt': qemu_out,
                             'sec': time.monotonic() - started})


def _watcher(source, progress):
    """What reports a conversion's progress, or None."""
    if progress is None:
        return None
    return qemu_progress.ReadProgress(progress,
                                      qemu_progress.data_size(source))


def _convert_onto_device(source, target, qemu_src, image_href,
                         source_info, progress=None):
    """``qemu-img convert -n -O raw`` onto a block device, in place."""
    device = target.target
    qemu_out = 'raw'
    size = destinations.device_size(target, image_href)  # not in use
    if source_info.virtual_size:
        destinations.check_fits(target.path, source_info.virtual_size,
                                size, image_href)
    started = time.monotonic()
    try:
        cmd = _convert_command(source, device, qemu_src, qemu_out, None,
                               device=True)
        watcher = _watcher(source, progress)
        _run_conversion(cmd, image_href, watcher)
        check_output(device, qemu_out, None, image_href)
        try:
            _fsync(device)
        except OSError as e:
            raise exception.ImageConvertFailed(
                image_href=image_href,
                reason=_('cannot sync %(dest)s: %(err)s') % {
                    'dest': target.path, 'err': e})
    except exception.IronicImagesException as e:
        # qemu-img may have written any part of the device.
        raise exception.destination_undefined(
            e, target.path, image_href) from e
    if watcher is not None:
        watcher.done()
    LOG.info('Converted %(src)s (%(sfmt)s) onto the device %(dest)s '
             '(%(ofmt)s) in %(sec).2f s',
             {'src': source, 'sfmt': qemu_src, 'dest': target.path,
              'ofmt': qemu_out, 'sec': time.monotonic() - started})


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resize_image(source: str, size: int, file_format: str,
                 image_href: typing.Optional[str] = None) -> None:
    """Change the virtual size of an image in place.

    The image passes the safety gate (as in :func:`convert_image`) and
    :func:`ironic_images.qemu.info.qemu_img_info` first, then
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
        safety gate and :func:`ironic_images.qemu.info.qemu_img_info`.
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
    qemu_format = qemu_info.check_source(source, file_format, image_href)
    qemu_info.qemu_img_info(source, qemu_format, image_href=image_href)
    try:
        process.execute('resize', '-f', qemu_format,
                        process.local_path(source), str(size))
    except (processutils.ProcessExecutionError, OSError) as e:
        raise exception.ImageConvertFailed(
            image_href=image_href,
            reason=_('qemu-img resize failed: %s') % process.failure_reason(e))
