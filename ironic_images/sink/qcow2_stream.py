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

"""qcow2 to raw while the image arrives, with no intermediate file.

A :class:`Qcow2ToRaw` reads a qcow2 in file order and writes each data
cluster straight to its place in the raw disk; a cluster that arrives
before anything points at it, or holds compressed data, waits in a spill
file. Only a header :func:`streamable_header` accepts is streamed; an
image qemu would call corrupt is refused with ImageUnacceptable naming
the ``qcow2_stream`` check. Why this works: the contributor guide's
"Inspection, the sink and streamed qcow2".
"""

import array
import heapq
import os
import struct
import tempfile

from ironic_images._i18n import _
from ironic_images import exception
from ironic_images.sink import qcow2_inflate

MAGIC = b'QFI\xfb'
#: Bytes of the stream :func:`streamable_header` needs (a version 3 header
#: up to its compression type).
HEADER_BYTES = 112
_HEADER = struct.Struct('>4sIQIIQIIQQIIQ')
_V3_HEADER = struct.Struct('>QQQII')
_COMPRESSION_TYPE_AT = 104
_COMPRESSION_TYPES = {0: 'zlib', 1: 'zstd'}
_INCOMPAT_COMPRESSION_TYPE = 1 << 3

# 64 KiB (qemu's default) to 2 MiB (qemu's largest). Smaller clusters are
# rare and would cost Python work per cluster; qemu-img converts them.
MIN_CLUSTER_BITS = 16
MAX_CLUSTER_BITS = 21
# qemu's own limit on the L1 table (QCOW_MAX_L1_SIZE).
MAX_L1_BYTES = 32 * 1024 * 1024

_OFFSET_MASK = 0x00fffffffffffe00
_COPIED = 1 << 63
_COMPRESSED = 1 << 62
_ZERO = 1
_SECTOR = 512


class Qcow2Header:
    """What streaming needs from a qcow2 header.

    :ivar cluster_bits: log2 of the cluster size.
    :ivar virtual_size: the disk size in bytes.
    :ivar l1_offset: file offset of the L1 table (cluster-aligned).
    :ivar l1_entries: L1 entries that map the disk.
    :ivar compression: ``'zlib'`` or ``'zstd'``.
    :ivar version: 2 or 3.
    """

    def __init__(self, cluster_bits, virtual_size, l1_offset, l1_entries,
                 compression, version=3):
        self.version = version
        self.cluster_bits = cluster_bits
        self.cluster_size = 1 << cluster_bits
        self.virtual_size = virtual_size
        self.l1_offset = l1_offset
        self.l1_entries = l1_entries
        self.compression = compression


def streamable_header(head):
    """Parse the start of a qcow2 stream, if it can be streamed.

    :param head: at least :data:`HEADER_BYTES` bytes (fewer only when the
        whole stream is shorter).
    :returns: a tuple of a :class:`Qcow2Header` (None when the image must
        go through qemu-img instead) and the reason it cannot be streamed
        (None when it can).
    """
    if len(head) < _HEADER.size or bytes(head[:4]) != MAGIC:
        return None, 'not a qcow2 header'
    (_magic, version, backing_offset, _backing_size, cluster_bits,
     virtual_size, crypt_method, l1_size, l1_offset, _refcount_offset,
     _refcount_clusters, _snapshots, _snapshots_offset) = (
        _HEADER.unpack_from(head))
    compression = 'zlib'
    if version == 3:
        if len(head) < HEADER_BYTES:
            return None, 'short version 3 header'
        incompatible, _compat, _autoclear, _order, header_length = (
            _V3_HEADER.unpack_from(head, _HEADER.size))
        if incompatible & ~_INCOMPAT_COMPRESSION_TYPE:
            # dirty, corrupt, external data file, extended L2 and any
            # feature added later
            return None, 'incompatible features 0x%x' % incompatible
        kind = (head[_COMPRESSION_TYPE_AT]
                if header_length > _COMPRESSION_TYPE_AT else 0)
        flagged = bool(incompatible & _INCOMPAT_COMPRESSION_TYPE)
        if flagged != (kind != 0):
            # qemu refuses to open such an image: let it say why.
            return None, 'compression type %d with its feature bit %s' % (
                kind, 'set' if flagged else 'clear')
        compression = _COMPRESSION_TYPES.get(kind)
        if compression is None:
            return None, 'compression type %d' % kind
    elif version != 2:
        return None, 'version %d' % version
    if backing_offset or crypt_method:
        return None, 'backing file or encryption'
    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        return None, 'cluster size 2^%d' % cluster_bits
    cluster_size = 1 << cluster_bits
    guest_clusters = -(-virtual_size // cluster_size)
    l1_entries = -(-guest_clusters // (cluster_size // 8))
    if l1_size * 8 > MAX_L1_BYTES or l1_size < l1_entries:
        return None, 'L1 table of %d entries' % l1_size
    if l1_offset % cluster_size:
        return None, 'unaligned L1 table'
    # qemu's disk is whole sectors: it drops a partial last one.
    return Qcow2Header(cluster_bits, virtual_size - virtual_size % _SECTOR,
                       l1_offset, l1_entries, compression, version), None


class _Mappings:
    """The allocated entries of one L2 table, in file order.

    Three arrays (8 bytes an entry) rather than tuples: an image whose L2
    tables all come before its data keeps every entry here at once.
    """

    __slots__ = ('hosts', 'words', 'guests', 'at')

    def __init__(self, entries):
        entries.sort()
        self.hosts = array.array('Q', (e[0] for e in entries))
        self.words = array.array('Q', (e[1] for e in entries))
        self.guests = array.array('Q', (e[2] for e in entries))
        self.at = 0


class Qcow2ToRaw:
    """Decode a qcow2 stream into a raw disk, cluster by cluster.

    :param header: the stream's :class:`Qcow2Header`.
    :param write_at: ``write_at(data, offset)`` writes raw bytes of the
        disk (it may leave zeros as holes).
    :param spill_dir: where to keep the spill file (an unnamed temp file,
        made only when needed).
    :param image_href: the image, for messages.
    """

    def __init__(self, header, write_at, spill_dir, image_href):
        self._header = header
        self._cs = header.cluster_size
        self._write_at = write_at
        self._spill_dir = spill_dir
        self._href = image_href
        self._spill = None
        self._spilled = bytearray()
        self._next = 0
        self._partial = bytearray()
        self._tables = {}
        self._heap = []
        self._seq = 0
        # (host, word, guest) of entries pointing back into the spill file,
        # flat: as compact as _Mappings.
        self._late = array.array('Q')
        self._carry = []
        self._l1 = bytearray(header.l1_entries * 8)
        self._l1_parts = -(-len(self._l1) // self._cs)
        first = header.l1_offset // self._cs
        for part in range(self._l1_parts):
            self._tables.setdefault(first + part, []).append(('l1', part))
        bits = header.cluster_bits - 8
        self._compressed_mask = (1 << (62 - bits)) - 1
        self._inflater = qcow2_inflate.ClusterInflater(
            header.compression, self._cs, image_href)

    @property
    def virtual_size(self):
        """The length of the raw disk, in bytes."""
        return self._header.virtual_size

    def write(self, data):
        """Take the next bytes of the qcow2 file.

        :param data: a bytes-like object.
        :raises: ImageUnacceptable when the image is corrupt or not laid
            out in a way it can be streamed; OSError from the files.
        """
        view = memoryview(data).cast('B')
        cs = self._cs
        if self._partial:
            need = cs - len(self._partial)
            self._partial += view[:need]
            view = view[need:]
            if len(self._partial) < cs:
                return
            self._process(memoryview(self._partial))
            self._partial = bytearray()
        whole = len(view) - len(view) % cs
        for start in range(0, whole, cs):
            self._process(view[start:start + cs])
        self._partial += view[whole:]

    def finish(self):
        """End the stream: place what waited for later bytes.

        Bytes past the end of the file read as zeros, as qemu reads them;
        a table or cluster that starts there refuses the image.

        :raises: ImageUnacceptable; OSError from the files.
        """
        try:
            if self._partial:
                self._partial += bytes(self._cs - len(self._partial))
                self._process(memoryview(self._partial))
                self._partial = bytearray()
            for remaining, buf, guest in self._carry:
                self._inflate(bytes(buf) + bytes(remaining), guest)
            self._carry = []
            if self._tables or self._heap:
                self._refuse(_('a table or cluster lies past the end of '
                               'the file'))
            late = self._late
            for at in range(0, len(late), 3):
                self._place_late(late[at], late[at + 1], late[at + 2])
            self._late = array.array('Q')
            for cluster, guest in self._inflater.drain():
                self._place(memoryview(cluster), guest)
        finally:
            self.close()

    def close(self):
        """Drop the spill file and stop the inflating threads.

        The decoder can no longer be used.
        """
        self._inflater.close()
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def _refuse(self, detail):
        raise exception.ImageUnacceptable(
            image_href=self._href, check='qcow2_stream',
            reason=_('qcow2_stream check failed: %s') % detail)

    def _process(self, data):
        """Use the host cluster that just arrived."""
        index = self._next
        self._next = index + 1
        start = index * self._cs
        end = start + self._cs
        if self._carry:
            self._feed_carry(data)
        # The header's cluster is the header's, as a table's is the
        # table's: no entry may point into it, so it is never spilled.
        used, compressed = index == 0, False
        for table in self._tables.pop(index, ()):
            self._read_table(table, data)
            used = True
        heap = self._heap
        while heap and heap[0][0] < end:
            host, _seq, mappings = heap[0]
            word = mappings.words[mappings.at]
            guest = mappings.guests[mappings.at]
            if word & _COMPRESSED:
                self._start_compressed(host - start, word, guest, data)
                compressed = True
            else:
                self._place(data, guest)
                used = True
            mappings.at += 1
            if mappings.at < len(mappings.hosts):
                heapq.heapreplace(heap, (mappings.hosts[mappings.at],
                                         _seq, mappings))
            else:
                heapq.heappop(heap)
        if compressed or not used:
            self._spill_cluster(index, data)

    def _read_table(self, table, data):
        kind, number = table
        if kind == 'l1':
            at = number * self._cs
            piece = data[:len(self._l1) - at]
            self._l1[at:at + len(piece)] = piece
            self._l1_parts -= 1
            if not self._l1_parts:
                self._read_l1()
        else:
            self._read_l2(number, data)

    def _read_l1(self):
        words = struct.unpack('>%dQ' % self._header.l1_entries, self._l1)
        self._l1 = None
        for number, word in enumerate(words):
            offset = word & _OFFSET_MASK
            if not offset:
                continue
            if offset % self._cs:
                self._refuse(_('unaligned L2 table at %d') % offset)
            index = offset // self._cs
            if index >= self._next:
                self._tables.setdefault(index, []).append(('l2', number))
            else:
                self._read_l2(number, self._from_spill(offset, self._cs))

    def _read_l2(self, number, data):
        """Queue the allocated entries of L2 table ``number``."""
        cs = self._cs
        per_table = cs // 8
        first_guest = number * per_table
        guests = min(per_table,
                     -(-self._header.virtual_size // cs) - first_guest)
        passed = self._next * cs
        future = []
        words = struct.unpack_from('>%dQ' % guests, data)
        for slot, word in enumerate(words):
            word &= ~_COPIED
            if word & _COMPRESSED:
                host = word & self._compressed_mask
            else:
                host = word & _OFFSET_MASK
                if host % cs:
                    # qemu calls this corruption, zero clusters included.
                    self._refuse(_('unaligned data cluster at %d') % host)
                if word & _ZERO and self._header.version < 3:
                    self._refuse(_('zero flag in a version 2 image'))
                if word & _ZERO or not host:
                    # Reads as zeros: the new raw disk is zeros already.
                    continue
            if host >= passed:
                future.append((host, word, first_guest + slot))
            elif self._is_spilled(host // cs):
                self._late.extend((host, word, first_guest + slot))
            else:
                self._refuse(_('cluster at %d is used twice') % host)
        if future:
            mappings = _Mappings(future)
            self._seq += 1
            heapq.heappush(self._heap,
                           (mappings.hosts[0], self._seq, mappings))

    def _compressed_length(self, host, word):
        bits = self._header.cluster_bits - 8
        sectors = ((word >> (62 - bits)) & ((1 << bits) - 1)) + 1
        return sectors * _SECTOR - host % _SECTOR

    def _start_compressed(self, offset, word, guest, data):
        length = self._compressed_length(offset, word)
        piece = data[offset:offset + length]
        if len(piece) == length:
            self._inflate(piece, guest)
        else:
            self._carry.append([length - len(piece), bytearray(piece),
                                guest])

    def _feed_carry(self, data):
        waiting = []
        for carry in self._carry:
            take = min(carry[0], len(data))
            carry[1] += data[:take]
            carry[0] -= take
            if carry[0]:
                waiting.append(carry)
            else:
                self._inflate(carry[1], carry[2])
        self._carry = waiting

    def _inflate(self, compressed, guest):
        for cluster, at in self._inflater.submit(compressed, guest):
            self._place(memoryview(cluster), at)

    def _place(self, data, guest):
        offset = guest * self._cs
        self._write_at(data[:self._header.virtual_size - offset], offset)

    def _place_late(self, host, word, guest):
        if word & _COMPRESSED:
            length = self._compressed_length(host, word)
            self._inflate(self._from_spill(host, length), guest)
        else:
            self._place(memoryview(self._from_spill(host, self._cs)), guest)

    def _spill_cluster(self, index, data):
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(dir=self._spill_dir)
        _pwrite_all(self._spill.fileno(), data, index * self._cs)
        byte = index >> 3
        if byte >= len(self._spilled):
            self._spilled += bytes(byte + 1 - len(self._spilled))
        self._spilled[byte] |= 1 << (index & 7)

    def _is_spilled(self, index):
        byte = index >> 3
        return (byte < len(self._spilled)
                and bool(self._spilled[byte] & (1 << (index & 7))))

    def _from_spill(self, offset, length):
        if not self._is_spilled(offset // self._cs):
            self._refuse(_('cluster at %d is used twice') % offset)
        data = os.pread(self._spill.fileno(), length, offset)
        # Past the end of the spill file reads as zeros, as past the end
        # of the image does.
        return data + bytes(length - len(data))


def _pwrite_all(fd, data, offset):
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
