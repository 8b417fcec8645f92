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

"""The streaming pipeline every driver uses to move image bytes.

:func:`stream` reads a source (``readinto(buffer)``) into a few large,
page-aligned buffers and passes each, in order, through the stages, one
thread per stage (:class:`Stage`); memory stays bounded at ``depth *
chunk_size`` and no byte is copied between the read and the stages. The
first error of any thread is raised once every thread has stopped. A
source that must start again from its first byte raises
:class:`RestartTransfer`, and every stage is ``reset()``. How and why:
the contributor guide's "The transfer pipeline".
"""

import hashlib
import mmap
import os
import queue
import threading
import typing

from oslo_log import log as logging

from ironic_images._i18n import _
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception

LOG = logging.getLogger(__name__)

_END = None


class Stage(typing.Protocol):
    """What :func:`stream` passes every chunk to; a hashlib object is one.

    Only :meth:`update` is required. A stage may also have:

    ``finish()``
        called once after the last chunk, when every chunk went through
        and nothing failed; what it raises fails the transfer.
    ``close()``
        called once every thread has stopped, whatever the outcome (a
        writer gives the caller's file back).
    ``reset()``
        called when the source starts again from its first byte
        (:class:`RestartTransfer`): forget everything so far. Without it
        such a restart fails the transfer.
    """

    def update(self, data: memoryview) -> None:
        """Take the next chunk, in the stage's own thread.

        :param data: the chunk; valid only during the call (its buffer
            goes on to the next stage, then back to the pool).
        """


class Source(typing.Protocol):
    """What :func:`stream` reads: a raw file, an HTTP response, ..."""

    def readinto(self, buffer: memoryview) -> int:
        """Fill the start of ``buffer``; return the count, 0 at the end.

        :raises: :class:`RestartTransfer` when the next bytes are the
            first bytes again.
        """


class IterableSource:
    """A source made from an iterable of bytes-like chunks.

    :param chunks: an iterable of bytes, bytearray or memoryview objects.
    """

    def __init__(self, chunks):
        self._chunks = iter(chunks)
        self._pending = memoryview(b'')

    def readinto(self, buffer):
        """Copy the next bytes into ``buffer``; 0 means the end."""
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks)).cast('B')
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


class RestartTransfer(Exception):
    """Raised by a source whose next bytes are the first bytes again.

    :param total: the size of the new body, or None when unknown.
    """

    def __init__(self, total=None):
        super().__init__(total)
        self.total = total


class Hasher:
    """A hashing stage that can start over.

    :param algorithm: a hashlib algorithm name.
    """

    def __init__(self, algorithm):
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)

    def update(self, data):
        """Hash ``data``."""
        self._hash.update(data)

    def reset(self):
        """Forget everything hashed so far."""
        self._hash = hashlib.new(self.algorithm)

    def hexdigest(self):
        """Return the lower-case hex digest of what was hashed."""
        return self._hash.hexdigest()


class TransferResult:
    """What a transfer moved: ``size`` in bytes."""

    def __init__(self, size):
        self.size = size


class _StageThread(threading.Thread):
    def __init__(self, stage, inbox, outbox, failure):
        super().__init__(name='transfer-%s' % type(stage).__name__,
                         daemon=True)
        self.stage = stage
        self.inbox = inbox
        self.outbox = outbox
        self.failure = failure

    def run(self):
        while True:
            item = self.inbox.get()
            if item is not _END and not self.failure.is_set():
                try:
                    self.stage.update(item)
                except BaseException as error:
                    self.failure.record(error)
            elif item is _END and not self.failure.is_set():
                finish = getattr(self.stage, 'finish', None)
                if finish is not None:
                    try:
                        finish()
                    except BaseException as error:
                        self.failure.record(error)
            self.outbox.put(item)
            if item is _END:
                return


class _Failure:
    """The first error of any thread of one transfer."""

    def __init__(self):
        self._event = threading.Event()
        self.error = None

    def record(self, error):
        if not self._event.is_set():
            self.error = error
            self._event.set()

    def is_set(self):
        return self._event.is_set()


def _fill(source, view):
    """Read until ``view`` is full or the source ends; return the count."""
    filled = 0
    while filled < len(view):
        count = source.readinto(view[filled:])
        if not count:
            break
        filled += count
    return filled


def stream(source: Source, stages: typing.Sequence[Stage],
           image_href: str, expected_size: typing.Optional[int] = None,
           max_size: typing.Optional[int] = None,
           progress: typing.Optional[
               typing.Callable[[int, typing.Optional[int]], None]] = None,
           cancel: typing.Optional[threading.Event] = None,
           chunk_size: typing.Optional[int] = None) -> TransferResult:
    """Move every byte of a source through the stages.

    :param source: an object with ``readinto(buffer) -> int`` (0 at the
        end): a raw file, an HTTP response, an :class:`IterableSource`.
    :param stages: :class:`Stage` objects, called in this order for every
        chunk; each runs in its own thread.
    :param image_href: the image, for error messages.
    :param expected_size: the exact size the source must have, or None;
        a restart (:class:`RestartTransfer`) brings the new size.
    :param max_size: the most bytes accepted, or None.
    :param progress: called as ``progress(done, total)`` after each chunk
        (``total`` is ``expected_size``, possibly None).
    :param cancel: a ``threading.Event``; when set the transfer stops.
    :param chunk_size: bytes per buffer; default [download]chunk_size.
    :returns: a :class:`TransferResult`.
    :raises: ImageDownloadFailed for a short, long, cancelled or unwritable
        transfer, or an ``expected_size`` that is not a number of bytes;
        whatever the source or a stage raised when it is one of our
        exceptions.
    """
    chunk_size = chunk_size or CONF.download.chunk_size
    if expected_size is not None and (
            isinstance(expected_size, bool)
            or not isinstance(expected_size, int) or expected_size < 0):
        # It comes from a server (a Glance record, a manifest): a list
        # would escape as TypeError, a negative size stream byte by byte.
        raise exception.ImageDownloadFailed(
            image_href=image_href,
            reason=_('the declared size %r is not a number of bytes')
            % (expected_size,))
    if expected_size is not None and expected_size < chunk_size:
        # Small bodies do not need large buffers.
        chunk_size = max(expected_size, 1)
    failure = _Failure()
    depth = len(stages) + 2
    pool = queue.SimpleQueue()
    for _i in range(depth):
        # Page-aligned, so a FileWriter can hand them to direct I/O.
        pool.put(mmap.mmap(-1, chunk_size,
                           flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS))
    inboxes = [queue.SimpleQueue() for _stage in stages]
    threads = [_StageThread(stage, inbox, outbox, failure)
               for stage, inbox, outbox
               in zip(stages, inboxes, inboxes[1:] + [_Recycler(pool)])]
    for thread in threads:
        thread.start()
    head = inboxes[0] if inboxes else _Recycler(pool)
    done = 0
    try:
        while not failure.is_set():
            if cancel is not None and cancel.is_set():
                raise exception.ImageDownloadFailed(
                    image_href=image_href, reason=_('cancelled'))
            buffer = pool.get()
            try:
                count = _fill(source, memoryview(buffer))
            except RestartTransfer as restart:
                pool.put(buffer)
                _restart(pool, depth, stages, failure, image_href)
                done = 0
                if expected_size is not None:
                    expected_size = restart.total
                continue
            if not count:
                pool.put(buffer)
                break
            done += count
            _check_limits(done, expected_size, max_size, image_href)
            head.put(memoryview(buffer)[:count])
            if progress is not None:
                progress(done, expected_size)
    except BaseException as error:
        failure.record(error)
    finally:
        head.put(_END)
        try:
            for thread in threads:
                thread.join()
        finally:
            # Even when the wait is interrupted (KeyboardInterrupt, an
            # eventlet timeout): a writer gives the caller's file back.
            _close(stages, failure)
    if failure.error is not None:
        raise _as_our_exception(failure.error, image_href)
    if expected_size is not None and done != expected_size:
        raise exception.ImageDownloadFailed(
            image_href=image_href,
            reason=_('received %(done)d bytes, expected %(expected)d') % {
                'done': done, 'expected': expected_size})
    return TransferResult(done)


def _close(stages, failure):
    for stage in stages:
        close = getattr(stage, 'close', None)
        if close is not None:
            try:
                close()
            except BaseException as error:
                failure.record(error)


def _check_limits(done, expected_size, max_size, image_href):
    if expected_size is not None and done > expected_size:
        raise exception.ImageDownloadFailed(
            image_href=image_href,
            reason=_('received more than the %d bytes expected')
            % expected_size)
    if max_size is not None and done > max_size:
        raise exception.ImageDownloadFailed(
            image_href=image_href,
            reason=_('larger than the %d bytes allowed') % max_size)


def _restart(pool, depth, stages, failure, image_href):
    """Wait for the buffers in flight, then reset every stage."""
    idle = [pool.get() for _i in range(depth)]
    try:
        if failure.is_set():
            return
        if not all(hasattr(stage, 'reset') for stage in stages):
            raise exception.ImageDownloadFailed(
                image_href=image_href,
                reason=_('the source must start again from the first byte '
                         'and the destination cannot be rewound'))
        LOG.info('Restarting the transfer of %s from the first byte',
                 masking.mask_href(image_href))
        for stage in stages:
            stage.reset()
    finally:
        for buffer in idle:
            pool.put(buffer)


class _Recycler:
    """The outbox of the last stage: gives buffers back to the pool."""

    def __init__(self, pool):
        self._pool = pool

    def put(self, item):
        if item is not _END:
            self._pool.put(item.obj)


def _as_our_exception(error, image_href):
    # Exceptions that are not errors (KeyboardInterrupt, SystemExit, an
    # eventlet or greenlet timeout or exit: BaseException but not
    # Exception) must reach the caller as they are.
    if (isinstance(error, exception.IronicImagesException)
            or not isinstance(error, Exception)):
        return error
    if isinstance(error, OSError):
        reason = os.strerror(error.errno) if error.errno else str(error)
    else:
        reason = '%s: %s' % (type(error).__name__, error)
    LOG.debug('Transfer of %(href)s failed: %(reason)s',
              {'href': masking.mask_href(image_href),
               'reason': masking.mask_text(reason)})
    return exception.ImageDownloadFailed(image_href=image_href,
                                         reason=reason)
