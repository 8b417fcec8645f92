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

"""Images crafted against the stream decoder: its output and its memory.

A compressed cluster's bytes may run on into the next host clusters,
whatever those hold (an entry may claim up to two clusters of bytes): qemu
reads them from the file, so the decoder must too, or refuse. And however
many entries share compressed bytes, the decoder holds at most
:func:`memory_bound` bytes.
"""

import hashlib
import os
import tracemalloc

import fixtures

from ironic_images.sink import qcow2_inflate
from ironic_images.sink import qcow2_spill
from ironic_images.tests.unit.sink import compressed_streams as cstreams
from ironic_images.tests.unit.sink import qcow2_builder as qb
from ironic_images.tests.unit.sink import test_qcow2_stream as base

CS = base.CS
PER_TABLE = base.PER_TABLE


def memory_bound(cluster_size, entries):
    """The most bytes (Python's allocations) a decoder may hold at once.

    With ``Q`` clusters in flight in the inflater: each holds up to two
    clusters of compressed bytes, or the cluster they make, and a thread
    inflating one up to three more; the decoder's own reads (an L2 table
    and its sorted index, compressed bytes read back, the partial cluster)
    are a constant. And 32 bytes for each allocated L2 entry of the image,
    the index of where the clusters still to come go.

    :param cluster_size: the image's cluster size.
    :param entries: the image's allocated L2 entries.
    """
    return ((3 * qcow2_inflate.QUEUE_DEPTH + 16) * cluster_size
            + 32 * entries)


def zeroed(image, cluster):
    """The image with host ``cluster`` all zeros."""
    image = bytearray(image)
    image[cluster * CS:(cluster + 1) * CS] = bytes(CS)
    return bytes(image)


class TestRunsIntoUsedClusters(base.DecoderTestCase):
    """Compressed bytes that run into a cluster placed or read as a table.

    Where said, each layout is tried twice: the compressed cluster mapped
    by an L2 table that comes after its bytes (read back from the spill
    file), and by one that comes before (read as the stream passes).
    """

    def two_tables(self, late, method='zlib', more=0):
        """L2 table 0 at 2; table 1 at 3, or after cluster ``6 + more``.

        Cluster 4 is free, and compressed data may start there; guest
        ``PER_TABLE`` is in table 1.
        """
        b = qb.Qcow2Builder((PER_TABLE + 8) * CS, compression=method)
        b.l2(0, 2)
        b.l2(1, 7 + more if late else 3)
        return b

    def assertReadsTheFile(self, b, guest, method, cluster):
        """Decodes as qemu reads it, which is not as if ``cluster`` were 0.

        :param cluster: the host cluster the compressed bytes run into.
        """
        image = b.build()
        word = b.entries[guest]
        read = cstreams.inflate_as_qemu(image, word, b.cluster_bits, method)
        self.assertIsNotNone(read)
        # The attack: with that cluster read as zeros, the bytes still
        # inflate to a whole cluster, a different one.
        other = cstreams.inflate_as_qemu(zeroed(image, cluster), word,
                                         b.cluster_bits, method)
        self.assertIsNotNone(other)
        self.assertNotEqual(read, other)
        b.guest[guest] = read
        self.assertDecodes(b, image)

    def test_back_reference_in_a_placed_cluster(self):
        # The deflate stream of the issue: its last match's distance code
        # is the first bytes of data cluster 5, placed as it arrives.
        for late in (True, False):
            b = self.two_tables(late)
            head, tail, _content = cstreams.deflate_far_match(CS)
            b.compressed_over(PER_TABLE, 5 * CS - len(head), head,
                              len(head) + len(tail))
            b.data(1, 5, tail + os.urandom(CS - len(tail)))
            self.assertReadsTheFile(b, PER_TABLE, 'zlib', 5)

    def test_stored_bytes_in_a_placed_cluster(self):
        # Stored deflate blocks, raw zstd blocks: the cluster's bytes are
        # the next cluster's, as they are in the file.
        for method, frame in (('zlib', cstreams.stored_deflate),
                              ('zstd', cstreams.raw_zstd)):
            for late in (True, False):
                b = self.two_tables(late, method)
                payload = frame(os.urandom(CS))
                b.compressed_over(PER_TABLE, 5 * CS - 1000, payload[:1000],
                                  len(payload))
                b.data(1, 5, (payload[1000:] + os.urandom(CS))[:CS])
                self.assertReadsTheFile(b, PER_TABLE, method, 5)

    def test_bytes_in_the_l2_table_that_maps_them(self):
        b = qb.Qcow2Builder(64 * CS)
        b.l2(0, 3)
        payload = cstreams.stored_deflate(os.urandom(CS))
        b.compressed_over(0, 3 * CS - 700, payload[:700], len(payload))
        for guest in range(1, 40):
            b.data(guest, 3 + guest)
        self.assertReadsTheFile(b, 0, 'zlib', 3)

    def test_bytes_in_the_l1_table(self):
        b = qb.Qcow2Builder(64 * CS)
        b.l1_at(3)
        b.l2(0, 4)
        payload = cstreams.stored_deflate(os.urandom(CS))
        b.compressed_over(0, 3 * CS - 700, payload[:700], len(payload))
        self.assertReadsTheFile(b, 0, 'zlib', 3)

    def test_bytes_over_three_clusters(self):
        # The first stored block's header ends cluster 4; the block and
        # the next header are data cluster 5; the last bytes start data
        # cluster 6.
        for late in (True, False):
            b = self.two_tables(late)
            payload = cstreams.stored_deflate(os.urandom(CS))
            self.assertGreater(len(payload) - 5, CS)
            b.compressed_over(PER_TABLE, 5 * CS - 5, payload[:5],
                              len(payload))
            b.data(1, 5, payload[5:5 + CS])
            b.data(2, 6, (payload[5 + CS:] + os.urandom(CS))[:CS])
            self.assertReadsTheFile(b, PER_TABLE, 'zlib', 6)

    def test_compressed_entries_over_every_kind_of_cluster(self):
        # Packed as qemu packs them, then entries that claim the most
        # bytes (two clusters): they run over data and the compressed
        # clusters after them, which inflating ignores.
        for late in (True, False):
            b = self.two_tables(late, more=6)
            at = 4 * CS + 300
            for guest in range(PER_TABLE, PER_TABLE + 6):
                at = b.compressed(guest, at)
            self.assertLess(at, 6 * CS)
            for guest in range(PER_TABLE + 6, PER_TABLE + 9):
                b.entry(guest, qb.compressed_entry(4 * CS + 300,
                                                   2 * CS - 300, 16))
                b.guest[guest] = b.guest[PER_TABLE]
            for guest in range(3):
                b.data(guest, 6 + guest)
            self.assertDecodes(b)

    def test_refused_rather_than_read_as_zeros(self):
        # Were the decoder to keep no cluster after a free one, the bytes
        # in the placed cluster would be missing: it must refuse, not
        # read zeros.
        self.useFixture(fixtures.MockPatchObject(qcow2_spill, 'KEPT_AFTER',
                                                 0))
        b = self.two_tables(late=True)
        payload = cstreams.stored_deflate(os.urandom(CS))
        b.compressed_over(PER_TABLE, 5 * CS - 1000, payload[:1000],
                          len(payload))
        b.data(1, 5, payload[1000:])
        self.assertRefused(b.build(), 'runs into cluster 5, which was not '
                           'kept')


class Discard:
    """A ``write_at`` that checks each write and keeps (almost) nothing.

    :param expected: {disk offset: the bytes written there}.
    """

    def __init__(self, expected):
        self.expected = {offset: hashlib.sha256(data).digest()
                         for offset, data in expected.items()}
        # One bit a cluster, allocated before the decoder is measured.
        self._seen = bytearray(max(expected, default=0) // CS // 8 + 1)

    def __call__(self, data, offset):
        if any(data):
            if hashlib.sha256(data).digest() != self.expected.get(offset):
                raise AssertionError('wrong bytes at %d' % offset)
            self._seen[offset // CS // 8] |= 1 << (offset // CS % 8)

    @property
    def written(self):
        """The offsets written with the expected bytes."""
        return {offset for offset in self.expected
                if self._seen[offset // CS // 8] & (1 << (offset // CS % 8))}


class TestMemoryBound(base.DecoderTestCase):
    """The decoder's allocations stay within :func:`memory_bound`."""

    def peak(self, builder, chunk=1024 * 1024):
        """Decode with tracemalloc on; the peak of what it allocated."""
        image = builder.build()
        expected = builder.expected()
        disk = Discard(expected)
        decoder, _ = self.decoder(image)
        decoder._write_at = disk
        tracemalloc.start()
        try:
            for start in range(0, len(image), chunk):
                decoder.write(image[start:start + chunk])
            decoder.finish()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            decoder.close()
        self.assertEqual(set(expected), disk.written)
        return peak

    def assertBounded(self, builder):
        peak = self.peak(builder)
        bound = memory_bound(builder.cluster_size, len(builder.entries))
        self.assertLess(peak, bound)
        return peak

    def shared(self, entries, late, method='zlib'):
        """``entries`` compressed entries on the same bytes.

        Each claims the most an entry can (two clusters, from 512 bytes
        into a host cluster): every one runs on into two more clusters.
        """
        tables = -(-entries // PER_TABLE)
        b = qb.Qcow2Builder(entries * CS, compression=method)
        data = 2 + (0 if late else tables)
        for number in range(tables):
            b.l2(number, data + 3 + number if late else 2 + number)
        content = qb.compressible(CS)
        b.put(data * CS + 512, qb.compress(content, method))
        word = qb.compressed_entry(data * CS + 512, 2 * CS - 512, 16)
        for guest in range(entries):
            b.entry(guest, word)
            b.guest[guest] = content
        # Something in the clusters the bytes run into.
        b.put((data + 1) * CS, os.urandom(2 * CS))
        return b

    def test_entries_sharing_bytes_ahead(self):
        # Each entry used to carry its own copy of the bytes until the
        # last of them arrived: 512 entries, 64 MiB.
        for method in ('zlib', 'zstd'):
            self.assertBounded(self.shared(512, late=False, method=method))

    def test_entries_sharing_bytes_behind(self):
        self.assertBounded(self.shared(512, late=True))

    def test_images_as_qemu_writes_them(self):
        for method in ('zlib', 'zstd'):
            self.assertBounded(base.packed(method)[0])
        big = 1 << 21
        b = qb.Qcow2Builder(8 * big, cluster_bits=21, compression='zstd')
        b.l2(0, 2)
        at = 3 * big + 4000
        for guest in range(6):
            at = b.compressed(guest, at)
        b.data(6, 5)
        self.assertBounded(b)

    def test_many_compressed_clusters(self):
        # More than the inflating threads hold, packed across host
        # clusters, half of them mapped from behind.
        b = qb.Qcow2Builder(2 * PER_TABLE * CS)
        b.l2(0, 2)
        b.l2(1, 60)
        at = 3 * CS + 100
        for guest in range(150):
            at = b.compressed(guest + (guest % 2) * PER_TABLE, at)
        self.assertBounded(b)
