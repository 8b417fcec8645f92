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
file (:mod:`ironic_images.sink.qcow2_spill`), which also keeps the two
clusters after every spilled one, so compressed bytes that run on are the
file's bytes, as qemu reads them, never zeros. Only a header
:func:`streamable_header` accepts is streamed; an image qemu would call
corrupt is refused with ImageUnacceptable naming the ``qcow2_stream``
check.

Memory, with ``cs`` the cluster size and ``Q`` the inflater's
:data:`~ironic_images.sink.qcow2_inflate.QUEUE_DEPTH`: at most
``(3 * Q + 16) * cs`` of cluster data and table reads, plus 32 bytes an
allocated L2 entry for where the clusters still to come go. Why this
works: the contributor guide's "Inspection, the sink and streamed qcow2".
"""

import array
import heapq
import struct
import sys

from ironic_images._i18n import _
from ironic_images import exception
from ironic_images.sink import qcow2_inflate
from ironic_images.sink import qcow2_spill

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
# An L1 entry's number in a key of the L2 tables still to come (an L1 of
# MAX_L1_BYTES has 2**22 entries).
_L1_BITS = 22
_L1_MASK = (1 << _L1_BITS) - 1


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
    if l1_entries * 8 > cluster_size:
        # Over 4 TiB with 64 KiB clusters: reading more L1 entries at once
        # would take memory beyond the decoder's bound.
        return None, 'L1 table over one cluster (%d entries)' % l1_entries
    if l1_offset % cluster_size:
        return None, 'unaligned L1 table'
    # qemu's disk is whole sectors: it drops a partial last one.
    return Qcow2Header(cluster_bits, virtual_size - virtual_size % _SECTOR,
                       l1_offset, l1_entries, compression, version), None


class _Mappings:
    """The entries of one L2 table that map clusters still to come.

    In host cluster order, as two arrays (12 bytes an entry): an image
    whose L2 tables all come before its data keeps every entry here at
    once.
    """

    __slots__ = ('words', 'slots', 'first_guest', 'at')

    def __init__(self, words, slots, first_guest):
        self.words = words
        self.slots = slots
        self.first_guest = first_guest
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
        self._href = image_href
        self._spill = qcow2_spill.SpillFile(self._cs, spill_dir, image_href)
        self._next = 0
        self._partial = bytearray()
        self._guest_clusters = -(-header.virtual_size // self._cs)
        # L1 parts by host cluster; the L2 tables still to come, as sorted
        # keys (host cluster << _L1_BITS | L1 entry) and the next one's
        # place.
        self._l1_parts = {}
        self._l2_keys = array.array('Q')
        self._l2_at = 0
        self._heap = []
        self._seq = 0
        # (word, guest) pairs, flat: entries that point back into the
        # spill file, placed at the end; compressed entries whose bytes
        # run into a later host cluster, by that cluster.
        self._late = array.array('Q')
        self._due = {}
        self._l1 = bytearray(header.l1_entries * 8)
        self._l1_left = -(-len(self._l1) // self._cs)
        first = header.l1_offset // self._cs
        for part in range(self._l1_left):
            self._l1_parts[first + part] = part
        bits = header.cluster_bits - 8
        self._compressed_mask = (1 << (62 - bits)) - 1
        self._slot_bits = header.cluster_bits - 3
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
            for index in sorted(self._due):
                self._inflate_all(self._due.pop(index))
            if (self._l1_parts or self._l2_at < len(self._l2_keys)
                    or self._heap):
                self._refuse(_('a table or cluster lies past the end of '
                               'the file'))
            late, self._late = self._late, array.array('Q')
            for at in range(0, len(late), 2):
                word, guest = late[at], late[at + 1]
                if word & _COMPRESSED:
                    self._inflate_all((word, guest))
                else:
                    self._place(memoryview(self._spill.read(
                        word & _OFFSET_MASK, self._cs, self._next)), guest)
            for cluster, guest in self._inflater.drain():
                self._place(memoryview(cluster), guest)
        finally:
            self.close()

    def close(self):
        """Drop the spill file and stop the inflating threads.

        The decoder can no longer be used.
        """
        self._inflater.close()
        self._spill.close()

    def _refuse(self, detail):
        raise exception.ImageUnacceptable(
            image_href=self._href, check='qcow2_stream',
            reason=_('qcow2_stream check failed: %s') % detail)

    def _process(self, data):
        """Use the host cluster that just arrived."""
        index = self._next
        self._next = index + 1
        start = index * self._cs
        # The header's cluster is the header's, as a table's is the
        # table's: no entry may point into it, so it is never spilled.
        used, compressed = index == 0, False
        if index in self._l1_parts:
            self._read_l1_part(self._l1_parts.pop(index), data)
            used = True
        keys, shift = self._l2_keys, _L1_BITS
        while self._l2_at < len(keys) and keys[self._l2_at] >> shift == index:
            self._read_l2(keys[self._l2_at] & _L1_MASK, data)
            self._l2_at += 1
            used = True
        heap = self._heap
        while heap and heap[0][0] == index:
            _index, _seq, mappings = heap[0]
            word = mappings.words[mappings.at]
            guest = mappings.first_guest + mappings.slots[mappings.at]
            if word & _COMPRESSED:
                self._start_compressed(word, guest, data, start)
                compressed = True
            else:
                self._place(data, guest)
                used = True
            mappings.at += 1
            if mappings.at < len(mappings.words):
                heapq.heapreplace(heap, (self._host(mappings.words[
                    mappings.at]) // self._cs, _seq, mappings))
            else:
                heapq.heappop(heap)
        self._spill.take(index, data, compressed or not used)
        due = self._due.pop(index, None)
        if due is not None:
            self._inflate_all(due)

    def _host(self, word):
        if word & _COMPRESSED:
            return word & self._compressed_mask
        return word & _OFFSET_MASK

    def _read_l1_part(self, part, data):
        at = part * self._cs
        piece = data[:len(self._l1) - at]
        self._l1[at:at + len(piece)] = piece
        self._l1_left -= 1
        if self._l1_left:
            return
        words = _big_endian_words(self._l1)
        self._l1 = None
        keys = []
        for number, word in enumerate(words):
            offset = word & _OFFSET_MASK
            if not offset:
                continue
            if offset % self._cs:
                self._refuse(_('unaligned L2 table at %d') % offset)
            index = offset // self._cs
            if index >= self._next:
                keys.append(index << _L1_BITS | number)
            else:
                self._read_l2(number, self._spill.read(offset, self._cs,
                                                       self._next))
        keys.sort()
        self._l2_keys = array.array('Q', keys)

    def _read_l2(self, number, data):
        """Queue the allocated entries of L2 table ``number``."""
        cs = self._cs
        first_guest = number * (cs // 8)
        guests = min(cs // 8, self._guest_clusters - first_guest)
        words = _big_endian_words(data[:guests * 8])
        passed = self._next * cs
        shift = self._slot_bits
        keys = []
        for slot, word in enumerate(words):
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
                # In host cluster order; within one, any order will do.
                keys.append(host // cs << shift | slot)
            elif self._spill.is_free(host // cs):
                self._late.extend((word & ~_COPIED, first_guest + slot))
            else:
                self._refuse(_('cluster at %d is used twice') % host)
        if keys:
            keys.sort()
            mask = (1 << shift) - 1
            slots = array.array('I', (key & mask for key in keys))
            mappings = _Mappings(
                array.array('Q', (words[slot] & ~_COPIED for slot in slots)),
                slots, first_guest)
            self._seq += 1
            heapq.heappush(self._heap,
                           (keys[0] >> shift, self._seq, mappings))

    def _compressed_length(self, host, word):
        bits = self._header.cluster_bits - 8
        sectors = ((word >> (62 - bits)) & ((1 << bits) - 1)) + 1
        return sectors * _SECTOR - host % _SECTOR

    def _start_compressed(self, word, guest, data, start):
        host = word & self._compressed_mask
        length = self._compressed_length(host, word)
        offset = host - start
        if offset + length <= self._cs:
            self._inflate(data[offset:offset + length], guest)
        else:
            # Read back from the spill file once the last cluster the
            # bytes run into has arrived (and been kept there).
            last = (host + length - 1) // self._cs
            self._due.setdefault(last, array.array('Q')).extend(
                (word, guest))

    def _inflate_all(self, pairs):
        """Inflate compressed (word, guest) pairs from the spill file."""
        for at in range(0, len(pairs), 2):
            word, guest = pairs[at], pairs[at + 1]
            host = word & self._compressed_mask
            self._inflate(self._spill.read(
                host, self._compressed_length(host, word), self._next),
                guest)

    def _inflate(self, compressed, guest):
        for cluster, at in self._inflater.submit(compressed, guest):
            self._place(memoryview(cluster), at)

    def _place(self, data, guest):
        offset = guest * self._cs
        self._write_at(data[:self._header.virtual_size - offset], offset)


def _big_endian_words(data):
    words = array.array('Q', bytes(data))
    if sys.byteorder == 'little':
        words.byteswap()
    return words
