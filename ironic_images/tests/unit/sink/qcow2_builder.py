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

"""Build qcow2 files in memory, laid out cluster by cluster.

Written from qemu's docs/interop/qcow2.txt, not from the decoder
(:mod:`ironic_images.sink.qcow2_stream`), so a test can put the L1
table, the L2 tables and the data clusters at any host cluster, in any
order, and say what the guest should read without decoding anything::

    b = Qcow2Builder(virtual_size=4 * 65536)
    b.l1_at(5)                    # the L1 table after the data
    b.l2(0, 3)                    # L1 entry 0 -> L2 table at cluster 3
    b.data(0, 1)                  # guest cluster 0 -> host cluster 1
    at = b.compressed(1, 2 * 65536)     # packed from byte 2 * 65536 ...
    b.compressed(2, at)           # ... the next one right after it
    image, raw = b.build(), b.expected_raw()

With :meth:`Qcow2Builder.refcounts_at`, a file built this way also
opens in qemu-img (its refcounts are not kept, which only ``qemu-img
check`` looks at).
"""

import inspect
import os
import struct
import tempfile
import zlib

import fixtures
import zstandard

from ironic_images.sink import qcow2_spill

MAGIC = b'QFI\xfb'
COPIED = 1 << 63
COMPRESSED = 1 << 62
ZERO = 1
OFFSET_MASK = 0x00fffffffffffe00
SECTOR = 512

INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
COMPRESSION_TYPES = {'zlib': 0, 'zstd': 1}

V2_HEADER_LENGTH = 72
V3_HEADER_LENGTH = 112


def header(version=3, backing_offset=0, backing_size=0, cluster_bits=16,
           virtual_size=1 << 20, crypt_method=0, l1_size=None, l1_offset=None,
           refcount_offset=0, refcount_clusters=0, snapshots=0,
           snapshots_offset=0, incompatible=0, compatible=0, autoclear=0,
           refcount_order=4, header_length=None, compression_type=0):
    """The bytes of a qcow2 header, every field chosen by the caller.

    ``l1_size`` defaults to the entries the disk needs, ``l1_offset`` to
    cluster 1, ``header_length`` to 112 (version 3). Nothing is checked:
    a test asks for a wrong header on purpose.
    """
    cluster_size = 1 << cluster_bits
    if l1_size is None:
        l1_size = l1_entries(virtual_size, cluster_bits)
    if l1_offset is None:
        l1_offset = cluster_size
    fields = struct.pack(
        '>4sIQIIQIIQQIIQ', MAGIC, version, backing_offset, backing_size,
        cluster_bits, virtual_size, crypt_method, l1_size, l1_offset,
        refcount_offset, refcount_clusters, snapshots, snapshots_offset)
    if version < 3:
        return fields
    if header_length is None:
        header_length = V3_HEADER_LENGTH
    fields += struct.pack('>QQQII', incompatible, compatible, autoclear,
                          refcount_order, header_length)
    # The compression type byte and its padding (present in the bytes
    # even when header_length says the field is not there).
    return fields + struct.pack('>B7x', compression_type)


def l1_entries(virtual_size, cluster_bits):
    """L1 entries a disk of ``virtual_size`` needs."""
    cluster_size = 1 << cluster_bits
    guest_clusters = -(-virtual_size // cluster_size)
    return -(-guest_clusters // (cluster_size // 8))


def compress(data, method):
    """Compress one cluster as qemu does.

    zlib: a raw deflate stream with a 4 KiB window (wbits -12); zstd: one
    frame.
    """
    if method == 'zstd':
        return zstandard.ZstdCompressor().compress(data)
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED,
                                  -12)
    return compressor.compress(data) + compressor.flush()


def compressed_entry(offset, length, cluster_bits):
    """An L2 entry for ``length`` compressed bytes at byte ``offset``.

    The entry counts the 512-byte sectors the data touches, as qemu
    writes it.
    """
    bits = cluster_bits - 8
    sectors = -(-(offset % SECTOR + length) // SECTOR)
    return COMPRESSED | ((sectors - 1) << (62 - bits)) | offset


def compressible(size):
    """``size`` bytes that compress to a little over a quarter.

    A random quarter, then zeros: several pack into one host cluster.
    """
    return os.urandom(size // 4) + bytes(size - size // 4)


class Qcow2Builder:
    """A qcow2 file under construction; see the module docstring.

    Host positions are cluster numbers (``cluster``) or byte offsets
    (``offset``); guest positions are guest cluster numbers.

    :param virtual_size: the disk size in bytes.
    :param cluster_bits: log2 of the cluster size.
    :param version: 2 or 3.
    :param compression: the method of :meth:`compressed` clusters;
        ``'zstd'`` also sets the header's compression type (version 3).
    :param header_fields: more :func:`header` keyword arguments.
    """

    def __init__(self, virtual_size, cluster_bits=16, version=3,
                 compression='zlib', **header_fields):
        self.virtual_size = virtual_size
        self.cluster_bits = cluster_bits
        self.cluster_size = 1 << cluster_bits
        self.version = version
        self.compression = compression
        self.header_fields = header_fields
        if compression == 'zstd':
            header_fields.setdefault('incompatible', INCOMPAT_COMPRESSION)
            header_fields.setdefault('compression_type', 1)
        self.l1_cluster = 1
        self.l1 = {}
        self.tables = set()
        self.entries = {}
        self.pieces = []
        self.guest = {}

    @property
    def per_table(self):
        """Guest clusters one L2 table maps."""
        return self.cluster_size // 8

    def l1_at(self, cluster):
        """Put the L1 table at host ``cluster``."""
        self.l1_cluster = cluster

    def refcounts_at(self, cluster):
        """Put a refcount table (of unallocated blocks) at ``cluster``.

        qemu opens no image without one; the decoder never reads it.
        """
        self.header_fields['refcount_offset'] = cluster * self.cluster_size
        self.header_fields['refcount_clusters'] = 1
        self.put(cluster * self.cluster_size, bytes(self.cluster_size))

    def l1_word(self, index, word):
        """Set L1 entry ``index`` to a raw ``word``."""
        self.l1[index] = word

    def l2(self, index, cluster):
        """Point L1 entry ``index`` at an L2 table at host ``cluster``.

        Two entries may share one table: its entries then map both.
        """
        self.l1_word(index, COPIED | cluster * self.cluster_size)
        self.tables.add(cluster)

    def entry(self, guest, word):
        """Set the L2 entry of ``guest`` to a raw ``word``.

        It goes in the table its L1 entry points at when the file is
        built.
        """
        self.entries[guest] = word

    def put(self, offset, data):
        """Write raw ``data`` at byte ``offset`` of the file."""
        self.pieces.append((offset, bytes(data)))

    def data(self, guest, cluster, content=None):
        """Map ``guest`` to a standard data cluster at host ``cluster``.

        :param content: the cluster's bytes (random by default; shorter
            is padded with zeros).
        :returns: the guest cluster's content.
        """
        content = self._content(content)
        self.put(cluster * self.cluster_size, content)
        self.entry(guest, COPIED | cluster * self.cluster_size)
        self.guest[guest] = content
        return content

    def zero(self, guest, cluster=0):
        """A zero-flag entry, preallocated at host ``cluster`` if not 0."""
        self.entry(guest, ZERO | cluster * self.cluster_size
                   | (COPIED if cluster else 0))
        self.guest[guest] = bytes(self.cluster_size)

    def compressed(self, guest, offset, content=None, payload=None,
                   method=None, extra_sectors=0):
        """Map ``guest`` to compressed data at byte ``offset``.

        :param content: the guest cluster (compressible bytes by default).
        :param payload: the compressed bytes to store, instead of
            compressing ``content`` (for corrupt data).
        :param method: ``'zlib'`` or ``'zstd'`` (the builder's default).
        :param extra_sectors: sectors the entry claims beyond the data.
        :returns: the byte offset just past the stored payload, where
            qemu would pack the next compressed cluster.
        """
        if content is None:
            content = compressible(self.cluster_size)
        content = self._content(content)
        if payload is None:
            payload = compress(content, method or self.compression)
        self.put(offset, payload)
        word = compressed_entry(offset, len(payload), self.cluster_bits)
        extra = extra_sectors << (62 - (self.cluster_bits - 8))
        self.entry(guest, word + extra)
        self.guest[guest] = content
        return offset + len(payload)

    def compressed_over(self, guest, offset, head, length):
        """Map ``guest`` to ``length`` compressed bytes at byte ``offset``.

        Only ``head``, their first bytes, is written here: the rest is
        whatever the file holds after it (a data cluster, a table), as
        qemu reads it. What the guest reads is then known only from the
        built file: see :func:`inflate_as_qemu`.
        """
        self.put(offset, head)
        self.entry(guest, compressed_entry(offset, length, self.cluster_bits))

    def _content(self, content):
        if content is None:
            content = os.urandom(self.cluster_size)
        return bytes(content) + bytes(self.cluster_size - len(content))

    def header(self):
        """The header bytes, from the builder and ``header_fields``."""
        fields = dict(self.header_fields)
        fields.setdefault('l1_offset', self.l1_cluster * self.cluster_size)
        return header(version=self.version, cluster_bits=self.cluster_bits,
                      virtual_size=self.virtual_size, **fields)

    def build(self, length=None):
        """The file's bytes.

        :param length: cut (or pad) the file to this many bytes; by
            default it ends with the last thing placed.
        """
        cs = self.cluster_size
        needed = l1_entries(self.virtual_size, self.cluster_bits)
        l1 = [self.l1.get(index, 0) for index in range(needed)]
        pieces = [(0, self.header()),
                  (self.l1_cluster * cs, struct.pack('>%dQ' % needed, *l1))]
        tables = {cluster: {} for cluster in self.tables}
        for guest, word in self.entries.items():
            table = self.l1[guest // self.per_table] & OFFSET_MASK
            tables[table // cs][guest % self.per_table] = word
        for cluster, table in tables.items():
            words = [table.get(slot, 0) for slot in range(self.per_table)]
            pieces.append((cluster * cs,
                           struct.pack('>%dQ' % self.per_table, *words)))
        pieces += self.pieces
        end = max(offset + len(data) for offset, data in pieces)
        image = bytearray(end)
        for offset, data in pieces:
            image[offset:offset + len(data)] = data
        if length is not None:
            image = image[:length] + bytes(max(0, length - len(image)))
        return bytes(image)

    def expected(self):
        """What the guest reads, as {disk offset: bytes}, zeros left out.

        Cut at the virtual size, as the guest sees it.
        """
        expected = {}
        for guest, content in self.guest.items():
            offset = guest * self.cluster_size
            content = content[:self.virtual_size - offset]
            if any(content):
                expected[offset] = content
        return expected

    def expected_raw(self):
        """The whole raw disk the guest reads (for small disks)."""
        raw = bytearray(self.virtual_size)
        for offset, content in self.expected().items():
            raw[offset:offset + len(content)] = content
        return bytes(raw)


class SpillFiles(fixtures.Fixture):
    """Record the decoder's spill files; each must be made in ``spill_dir``.

    :ivar made: the spill files, in the order they were made.
    """

    def __init__(self, spill_dir):
        super().__init__()
        self.spill_dir = spill_dir
        self.made = []

    def _setUp(self):
        real = tempfile.TemporaryFile

        def spy(*args, **kwargs):
            where = inspect.signature(real).bind(*args, **kwargs)
            if where.arguments.get('dir') != self.spill_dir:
                raise AssertionError('spill file made in %r, not %r' % (
                    where.arguments.get('dir'), self.spill_dir))
            spill = real(*args, **kwargs)
            self.made.append(spill)
            return spill

        self.useFixture(fixtures.MockPatchObject(
            qcow2_spill.tempfile, 'TemporaryFile', side_effect=spy))
