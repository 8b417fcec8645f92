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

"""A block device written in place: every byte of the disk, holes too.

A volume's earlier contents must never show through the new image, so
every range of the disk is written: the data where the sink has data,
zeros everywhere else. The sink skips zero blocks and the qcow2 decoder
skips unallocated clusters, and neither writes in order in general, so
the output keeps a *frontier*: everything before it is written or zeroed.
A write past the frontier first zeroes the gap it jumps over (a later
write into that gap lands on zeros, which it overwrites); a write behind
it lands on zeros already; :meth:`DeviceOutput.finish` zeroes from the
frontier to the end of the disk. Nothing past the disk's end is touched.

Zeroing uses ``BLKZEROOUT``, which the kernel turns into the device's own
write-zeroes or unmap-that-reads-zeros when it has them (a loop device
punches a hole in its file), and into written zeros otherwise; where the
ioctl is refused, zeros are written. A plain discard is never used: not
every device reads zeros after it. (Zeroing the whole disk first, as
``qemu-img convert`` does where the device unmaps, was measured slower
on a loop device: 2.2 s to punch 2 GiB, then slower writes into the
holes.)

Direct I/O where the device takes it: the bytes are gathered in aligned
buffers (4 MiB) and written in whole logical blocks; a partial block at
either end of a run is read from the device and merged, so bytes outside
the disk's ranges keep what they held. A direct write waits for the
device, so the writes and the zeroing run in a few threads
(:data:`WORKERS`), as qemu-img keeps several requests in flight; an
operation never starts while another one on an overlapping range is in
flight, which keeps the order that matters. The device is opened with
``O_EXCL``, which a mounted device refuses.
"""

import concurrent.futures
import errno
import fcntl
import mmap
import os
import struct

from oslo_log import log as logging

from ironic_images.common import destinations
from ironic_images.conf import CONF
from ironic_images.sink import outputs

LOG = logging.getLogger(__name__)

# <linux/fs.h>: _IO(0x12, 127), an argument of two u64: start, length.
BLKZEROOUT = 0x127f
#: Bytes gathered before they are written.
STAGE_BYTES = 4 * 1024 * 1024
#: Writes (and zeroings) in flight at once.
WORKERS = 4
# One BLKZEROOUT call at most this long: a device without write-zeroes
# has the kernel write every zero before the call returns.
_ZEROOUT_PIECE = 256 * 1024 * 1024
_NO_ZEROOUT = (errno.ENOTTY, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS)
_O_DIRECT = getattr(os, 'O_DIRECT', 0)


class DeviceOutput(outputs.Output):
    """A block device, written in place.

    :param path: the device.
    :param image_href: the image, for messages.
    :param direct_io: open it with ``O_DIRECT`` where it takes it; None:
        ``[download]direct_io``.
    :raises: OSError when the device cannot be opened (EBUSY: mounted or
        held by another exclusive user).
    """

    def __init__(self, path, image_href=None, direct_io=None):
        super().__init__(path)
        self._href = image_href
        if direct_io is None:
            direct_io = CONF.download.direct_io
        flags = os.O_RDWR | os.O_CLOEXEC | os.O_EXCL
        self._fd = None
        self.direct = False
        if direct_io and _O_DIRECT:
            try:
                self._fd = os.open(path, flags | _O_DIRECT)
                self.direct = True
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
        if self._fd is None:
            self._fd = os.open(path, flags)
        try:
            #: The device's size, in bytes.
            self.size = destinations.block_device_size(self._fd)
            self._block = destinations.logical_block_size(self._fd)
        except BaseException:
            os.close(self._fd)
            raise
        self._inflight = _InFlight(self._fd)
        # Page-aligned (anonymous maps), with room for one more block to
        # merge a partial last one into.
        self._buf = self._inflight.take_buffer(STAGE_BYTES + self._block)
        self._scratch = mmap.mmap(-1, max(self._block, mmap.PAGESIZE))
        self._start = 0
        self._fill = 0
        self._frontier = 0

    def check_fits(self, length):
        """Refuse a disk of ``length`` bytes that the device cannot hold.

        :raises: ImageUnacceptable.
        """
        destinations.check_fits(self.path, length, self.size, self._href)

    def pwrite(self, data, offset):
        view = memoryview(data).cast('B')
        end = offset + len(view)
        self.check_fits(end)
        if offset > self._frontier:
            self._zero(self._frontier, offset)
        self._stage(view, offset)
        self._frontier = max(self._frontier, end)

    def finish(self, length):
        self.check_fits(length)
        if length > self._frontier:
            self._zero(self._frontier, length)
            self._frontier = length
        self._flush()
        self._inflight.wait_all()

    def reset(self):
        # What is on the device stays until written or zeroed again.
        self._inflight.wait_all()
        self._fill = 0
        self._frontier = 0

    def sync(self):
        self._flush()
        self._inflight.wait_all()
        os.fsync(self._fd)

    def close(self):
        if self._fd is not None:
            try:
                self._inflight.close()
            finally:
                os.close(self._fd)
                self._fd = None
                self._scratch.close()

    @property
    def touched(self):
        return self._inflight.started

    def _zero(self, start, end):
        """Zero ``[start, end)``: whole blocks by ioctl, edges staged."""
        bs = self._block
        first = -(-start // bs) * bs
        last = end // bs * bs
        if first >= last:
            self._stage(memoryview(bytes(end - start)), start)
            return
        if first > start:
            self._stage(memoryview(bytes(first - start)), start)
        # Nothing staged reaches past ``first``: staged bytes lie before
        # the frontier, which is at most ``start``.
        while first < last:
            length = min(last - first, _ZEROOUT_PIECE)
            self._inflight.zero(first, first + length)
            first += length
        if end > last:
            self._stage(memoryview(bytes(end - last)), last)

    def _stage(self, view, offset):
        """Gather ``view`` for ``offset``; write whole buffers."""
        bs = self._block
        while view:
            if self._fill and (offset != self._start + self._fill
                               or self._fill == STAGE_BYTES):
                self._flush()
            if not self._fill:
                self._start = offset - offset % bs
                self._fill = offset - self._start
                if self._fill:
                    # A run that starts inside a block: the block's
                    # earlier bytes are the device's.
                    self._read_block(self._start, self._buf)
            count = min(len(view), STAGE_BYTES - self._fill)
            self._buf[self._fill:self._fill + count] = view[:count]
            self._fill += count
            offset += count
            view = view[count:]
            if self._fill == STAGE_BYTES:
                self._flush()

    def _flush(self):
        """Write what is gathered, merging a partial last block."""
        fill = self._fill
        if not fill:
            return
        bs = self._block
        whole = fill - fill % bs
        length = whole
        if fill > whole:
            # The block's later bytes are the device's.
            self._read_block(self._start + whole, self._scratch)
            self._buf[fill:whole + bs] = self._scratch[fill - whole:bs]
            length = whole + bs
        self._fill = 0
        self._inflight.write(self._buf, length, self._start)
        self._buf = self._inflight.take_buffer(STAGE_BYTES + bs)

    def _read_block(self, offset, buf):
        self._inflight.wait_overlapping(offset, offset + self._block)
        view = memoryview(buf)[:self._block]
        done = 0
        while done < self._block:
            count = os.preadv(self._fd, [view[done:]], offset + done)
            if not count:
                raise OSError(errno.EIO, 'short read from %s' % self.path)
            done += count


class _InFlight:
    """The writes and zeroings of a device, run in a few threads.

    An operation waits for those in flight on an overlapping range before
    it starts; the first error of any is raised by the next call.

    :param fd: the device's descriptor.
    """

    def __init__(self, fd):
        self._fd = fd
        self._pool = None
        # (start, end, future, buffer or None), oldest first.
        self._ops = []
        self._free = []
        self._buffers = 0
        # Read only, by every thread; its pages are the kernel's shared
        # zero page until written, so it costs no memory.
        self._zero_buf = mmap.mmap(-1, STAGE_BYTES)
        self._zeroout = True
        self.started = False

    def take_buffer(self, size):
        """A free aligned buffer of ``size`` bytes (waits for one)."""
        while not self._free:
            if self._buffers <= WORKERS:
                self._buffers += 1
                return mmap.mmap(-1, size)
            self._wait(self._oldest_buffer_op())
        return self._free.pop()

    def write(self, buf, length, offset):
        """Write ``buf[:length]`` at ``offset``; ``buf`` is given up."""
        self._submit(offset, offset + length, self._write_all, buf,
                     memoryview(buf)[:length], offset)

    def zero(self, start, end):
        """Zero ``[start, end)`` (whole blocks)."""
        self._submit(start, end, self._zero_range, None, start, end)

    def wait_overlapping(self, start, end):
        """Wait for the operations on ``[start, end)`` in flight."""
        for op in list(self._ops):
            if op[0] < end and start < op[1]:
                self._wait(op)

    def wait_all(self):
        """Wait for every operation; raise the first error."""
        while self._ops:
            self._wait(self._ops[0])

    def close(self):
        """Wait for what is in flight (errors ignored) and stop."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._ops = []
        for buf in self._free + [self._zero_buf]:
            try:
                buf.close()
            except BufferError:
                pass  # still seen by a failed write's traceback: GC'd
        self._free = []

    def _submit(self, start, end, function, buf, *args):
        self.wait_overlapping(start, end)
        self._reap()
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=WORKERS, thread_name_prefix='device-writer')
        future = self._pool.submit(function, *args)
        self.started = True
        self._ops.append((start, end, future, buf))

    def _oldest_buffer_op(self):
        return next(op for op in self._ops if op[3] is not None)

    def _wait(self, op):
        try:
            op[2].result()
        finally:
            self._ops.remove(op)
            if op[3] is not None:
                self._free.append(op[3])

    def _reap(self):
        for op in [op for op in self._ops if op[2].done()]:
            self._wait(op)

    def _write_all(self, view, offset):
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written

    def _zero_range(self, start, end):
        if self._zeroout:
            try:
                fcntl.ioctl(self._fd, BLKZEROOUT,
                            struct.pack('QQ', start, end - start))
                return
            except OSError as error:
                if error.errno not in _NO_ZEROOUT:
                    raise
                LOG.debug('The device refuses BLKZEROOUT (%s); writing '
                          'zeros', error)
                self._zeroout = False
        while start < end:
            length = min(end - start, STAGE_BYTES)
            self._write_all(memoryview(self._zero_buf)[:length], start)
            start += length
