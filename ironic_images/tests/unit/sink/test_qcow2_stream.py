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

import hashlib
import os
import tracemalloc

import fixtures
import zstandard

from ironic_images import exception
from ironic_images.sink import qcow2_stream
from ironic_images.tests import base
from ironic_images.tests.unit.sink import qcow2_builder as qb

CS = 1 << 16
PER_TABLE = CS // 8


def digest(writes):
    """{offset: hash and length}: short to print when a test fails."""
    return {offset: '%s:%d' % (hashlib.sha256(data).hexdigest()[:12],
                               len(data))
            for offset, data in writes.items()}


class RawDisk:
    """The decoder's ``write_at``: keeps each write, refuses overlaps."""

    def __init__(self):
        self.writes = {}

    def __call__(self, data, offset):
        data = bytes(data)
        for other, old in self.writes.items():
            if other < offset + len(data) and offset < other + len(old):
                raise AssertionError('write at %d overlaps the one at %d'
                                     % (offset, other))
        self.writes[offset] = data

    def nonzero(self):
        return {offset: data for offset, data in self.writes.items()
                if any(data)}


class TestStreamableHeader(base.TestCase):

    def assertFallsBack(self, head, reason):
        header, why = qcow2_stream.streamable_header(head)
        self.assertIsNone(header)
        self.assertIn(reason, why)

    def assertStreams(self, head):
        header, why = qcow2_stream.streamable_header(head)
        self.assertIsNone(why)
        self.assertIsInstance(header, qcow2_stream.Qcow2Header)
        return header

    def test_not_qcow2(self):
        self.assertFallsBack(bytes(qcow2_stream.HEADER_BYTES),
                             'not a qcow2 header')
        self.assertFallsBack(b'QFI\xfa' + qb.header()[4:],
                             'not a qcow2 header')
        # The magic, but fewer bytes than a version 2 header.
        self.assertFallsBack(qb.header()[:71], 'not a qcow2 header')
        self.assertFallsBack(b'', 'not a qcow2 header')

    def test_versions_other_than_2_and_3(self):
        for version in (0, 1, 4, 0xffffffff):
            self.assertFallsBack(qb.header(version=version),
                                 'version %d' % version)

    def test_short_version_3_header(self):
        self.assertFallsBack(qb.header()[:qcow2_stream.HEADER_BYTES - 1],
                             'short version 3 header')
        self.assertFallsBack(qb.header()[:72], 'short version 3 header')

    def test_version_2_needs_72_bytes(self):
        header = self.assertStreams(qb.header(version=2, virtual_size=CS))
        self.assertEqual(2, header.version)
        self.assertEqual('zlib', header.compression)

    def test_each_incompatible_feature_falls_back(self):
        bits = [qb.INCOMPAT_DIRTY, qb.INCOMPAT_CORRUPT,
                qb.INCOMPAT_DATA_FILE, qb.INCOMPAT_EXTL2, 1 << 5, 1 << 63]
        for bit in bits:
            self.assertFallsBack(qb.header(incompatible=bit),
                                 'incompatible features 0x%x' % bit)
            # Also next to a valid compression type.
            both = bit | qb.INCOMPAT_COMPRESSION
            self.assertFallsBack(
                qb.header(incompatible=both, compression_type=1),
                'incompatible features 0x%x' % both)

    def test_compression_type_bit_without_the_field(self):
        for length in (104, 96):
            self.assertFallsBack(
                qb.header(incompatible=qb.INCOMPAT_COMPRESSION,
                          header_length=length, compression_type=1),
                'compression type 0 with its feature bit set')

    def test_unknown_compression_type(self):
        for kind in (2, 255):
            self.assertFallsBack(
                qb.header(incompatible=qb.INCOMPAT_COMPRESSION,
                          compression_type=kind),
                'compression type %d' % kind)

    def test_compression_type_and_its_bit_disagree(self):
        # qemu refuses both ("Compression type incompatible feature bit
        # must (not) be set"): the image must go to qemu-img, which
        # reports it, rather than be decoded with a guessed method.
        self.assertFallsBack(
            qb.header(incompatible=qb.INCOMPAT_COMPRESSION,
                      compression_type=0), 'compression type')
        self.assertFallsBack(qb.header(compression_type=1),
                             'compression type')

    def test_accepted_version_3_headers(self):
        header = self.assertStreams(qb.header(
            virtual_size=5 * CS + 512, l1_offset=3 * CS))
        self.assertEqual((3, 'zlib', 16, CS, 5 * CS + 512, 3 * CS, 1),
                         (header.version, header.compression,
                          header.cluster_bits, header.cluster_size,
                          header.virtual_size, header.l1_offset,
                          header.l1_entries))
        zstd = self.assertStreams(qb.header(
            incompatible=qb.INCOMPAT_COMPRESSION, compression_type=1))
        self.assertEqual('zstd', zstd.compression)
        # A longer header (with room for later fields) is fine too.
        longer = self.assertStreams(qb.header(header_length=120))
        self.assertEqual('zlib', longer.compression)

    def test_backing_file_or_encryption(self):
        self.assertFallsBack(qb.header(backing_offset=512, backing_size=8),
                             'backing file or encryption')
        for method in (1, 2):
            self.assertFallsBack(qb.header(crypt_method=method),
                                 'backing file or encryption')

    def test_cluster_sizes(self):
        for bits in list(range(9, 16)) + [22, 30]:
            self.assertFallsBack(qb.header(cluster_bits=bits),
                                 'cluster size 2^%d' % bits)
        for bits in range(16, 22):
            header = self.assertStreams(qb.header(cluster_bits=bits))
            self.assertEqual(1 << bits, header.cluster_size)

    def test_l1_smaller_than_the_disk_needs(self):
        size = 3 * PER_TABLE * CS + 1
        self.assertFallsBack(qb.header(virtual_size=size, l1_size=3),
                             'L1 table of 3 entries')
        self.assertFallsBack(qb.header(virtual_size=size, l1_size=0),
                             'L1 table of 0 entries')
        self.assertEqual(4, self.assertStreams(
            qb.header(virtual_size=size, l1_size=4)).l1_entries)
        # A bigger L1 than needed (qemu leaves room to grow): only the
        # needed entries are read.
        self.assertEqual(4, self.assertStreams(
            qb.header(virtual_size=size, l1_size=1000)).l1_entries)

    def test_l1_over_32_mib(self):
        most = qcow2_stream.MAX_L1_BYTES // 8
        disk = most * PER_TABLE * CS
        self.assertFallsBack(qb.header(virtual_size=disk + 1),
                             'L1 table of')
        # qemu refuses an L1 table over 32 MiB ("Active L1 table too
        # large") even when the disk needs fewer entries.
        self.assertFallsBack(qb.header(virtual_size=CS, l1_size=most + 1),
                             'L1 table of')

    def test_l1_over_one_cluster(self):
        # Disks of over 4 TiB (64 KiB clusters) go to qemu-img: reading
        # more L1 entries at once would take the decoder past its memory
        # bound.
        disk = PER_TABLE * PER_TABLE * CS
        self.assertEqual(PER_TABLE, self.assertStreams(
            qb.header(virtual_size=disk)).l1_entries)
        self.assertFallsBack(qb.header(virtual_size=disk + CS),
                             'L1 table over one cluster (%d entries)'
                             % (PER_TABLE + 1))
        # With 2 MiB clusters, one cluster of L1 maps 2**57 bytes.
        big = self.assertStreams(qb.header(cluster_bits=21,
                                           virtual_size=1 << 56))
        self.assertEqual(1 << 17, big.l1_entries)

    def test_unaligned_l1_table(self):
        for offset in (CS + 512, CS // 2, 3):
            self.assertFallsBack(qb.header(l1_offset=offset),
                                 'unaligned L1 table')
        self.assertFallsBack(qb.header(cluster_bits=21, l1_offset=CS),
                             'unaligned L1 table')


class DecoderTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.spill_dir = self.useFixture(fixtures.TempDir()).path
        self.made = self.useFixture(
            qb.SpillFiles(self.spill_dir)).made

    def decoder(self, image, href='href'):
        header, why = qcow2_stream.streamable_header(
            image[:qcow2_stream.HEADER_BYTES])
        self.assertIsNone(why)
        disk = RawDisk()
        return qcow2_stream.Qcow2ToRaw(header, disk, self.spill_dir,
                                       href), disk

    def decode(self, image, chunk=1024 * 1024):
        decoder, disk = self.decoder(image)
        for start in range(0, len(image), chunk):
            decoder.write(image[start:start + chunk])
        decoder.finish()
        self.assertEqual([], os.listdir(self.spill_dir))
        return disk

    def assertDecodes(self, builder, image=None, chunk=1024 * 1024):
        image = builder.build() if image is None else image
        disk = self.decode(image, chunk)
        self.assertEqual(digest(builder.expected()), digest(disk.nonzero()))
        return disk

    def assertRefused(self, image, problem, href='href'):
        decoder, _disk = self.decoder(image, href)

        def decode():
            decoder.write(image)
            decoder.finish()

        error = self.assertRaises(exception.ImageUnacceptable, decode)
        self.assertEqual('qcow2_stream', error.kwargs['check'])
        self.assertIn(problem, str(error))
        decoder.close()
        self.assertTrue(all(spill.closed for spill in self.made))
        return error


def packed(method):
    """Compressed clusters packed as qemu packs them.

    Two span a host cluster boundary; two are mapped by an L2 table that
    comes after them.

    :returns: the builder and the ranges of the spanning ones.
    """
    b = qb.Qcow2Builder((PER_TABLE + 4) * CS, compression=method)
    b.l2(0, 2)
    b.l2(1, 7)
    at = b.compressed(0, 3 * CS + CS - 20000)
    spans = [(at, b.compressed(1, at))]
    at = b.compressed(2, spans[0][1], content=qb.compressible(CS // 2))
    # Mapped by the table at 7: read back from the spill file.
    late = 4 * CS + CS - 5000
    spans.append((late, b.compressed(PER_TABLE, late)))
    b.compressed(PER_TABLE + 1, spans[1][1])
    b.data(3, 6)
    b.compressed(4, 8 * CS + 100)
    return b, spans


class TestDecode(DecoderTestCase):
    """Qcow2ToRaw writes what the guest reads, whatever the file order."""

    def test_in_order(self):
        b = qb.Qcow2Builder(7 * CS)
        b.l2(0, 2)
        b.data(0, 3)
        b.data(2, 4)
        b.data(3, 5, bytes(CS))
        b.data(5, 6)
        b.data(6, 7, os.urandom(100))
        disk = self.assertDecodes(b)
        self.assertEqual({0, 2 * CS, 3 * CS, 5 * CS, 6 * CS},
                         set(disk.writes))

    def test_version_2(self):
        b = qb.Qcow2Builder(3 * CS, version=2)
        b.l2(0, 2)
        b.data(0, 4)
        b.compressed(2, 3 * CS + 512)
        self.assertDecodes(b)

    def test_l1_after_the_data(self):
        # Everything before the L1 table waits in the spill file.
        b = qb.Qcow2Builder(4 * CS)
        b.data(0, 1)
        b.data(3, 2)
        b.l2(0, 3)
        b.l1_at(4)
        b.data(1, 5)
        self.assertDecodes(b)
        self.assertEqual(1, len(self.made))

    def test_l2_after_its_data(self):
        b = qb.Qcow2Builder(5 * CS)
        b.data(0, 2)
        b.data(1, 3)
        b.l2(0, 4)
        b.data(2, 5)
        b.data(4, 6)
        self.assertDecodes(b)

    def test_packed_compressed_clusters(self):
        for method in ('zlib', 'zstd'):
            b, spans = packed(method)
            for start, end in spans:
                self.assertNotEqual(start // CS, (end - 1) // CS)
            self.assertDecodes(b)

    def test_compressed_with_2_mib_clusters(self):
        big = 1 << 21
        b = qb.Qcow2Builder(4 * big, cluster_bits=21, compression='zstd')
        b.l2(0, 2)
        at = b.compressed(0, 3 * big + 4000)
        b.compressed(3, at)
        b.data(1, 4)
        self.assertDecodes(b)

    def test_zero_flag_entries(self):
        b = qb.Qcow2Builder(4 * CS)
        b.l2(0, 2)
        b.zero(0)
        # Preallocated zeros: the host cluster's bytes are not the data.
        b.put(3 * CS, os.urandom(CS))
        b.zero(1, 3)
        b.data(2, 4)
        disk = self.assertDecodes(b)
        self.assertEqual([2 * CS], list(disk.writes))

    def test_unallocated_entries(self):
        b = qb.Qcow2Builder(4 * CS)
        b.l2(0, 2)
        b.data(1, 3)
        # Offset 0 is unallocated even with the copied flag.
        b.entry(2, qb.COPIED)
        b.put(4 * CS, os.urandom(CS))
        disk = self.assertDecodes(b)
        self.assertEqual([CS], list(disk.writes))

    def test_unmapped_l1_entries(self):
        b = qb.Qcow2Builder(3 * PER_TABLE * CS)
        b.l2(1, 2)
        b.data(PER_TABLE + 7, 3)
        self.assertDecodes(b)

    def test_last_cluster_cut_at_the_virtual_size(self):
        b = qb.Qcow2Builder(2 * CS + CS // 2)
        b.l2(0, 2)
        b.data(2, 3)
        b.data(0, 4)
        disk = self.assertDecodes(b)
        self.assertEqual(CS // 2, len(disk.writes[2 * CS]))

    def test_file_ends_mid_cluster(self):
        b = qb.Qcow2Builder(3 * CS)
        b.l2(0, 2)
        b.data(0, 3)
        b.data(1, 4, os.urandom(1000))
        self.assertDecodes(b, b.build(length=4 * CS + 1000))
        # Also when the cut is inside the L2 table: past the end is zeros.
        c = qb.Qcow2Builder(3 * CS)
        c.l2(0, 3)
        c.data(0, 2)
        self.assertDecodes(c, c.build(length=3 * CS + 8))

    def test_compressed_range_past_the_end_of_the_file(self):
        for method in ('zlib', 'zstd'):
            b = qb.Qcow2Builder(2 * CS, compression=method)
            b.l2(0, 2)
            # The entry claims sectors past the end of the file.
            end = b.compressed(1, 3 * CS + CS - 900,
                               content=bytes(CS - 1) + b'x',
                               extra_sectors=4)
            self.assertLess(end, 4 * CS)
            self.assertDecodes(b)
            # Within the last, partial, cluster.
            c = qb.Qcow2Builder(2 * CS, compression=method)
            c.l2(0, 2)
            c.compressed(0, 3 * CS + 1000, extra_sectors=3)
            self.assertDecodes(c)

    def test_two_l1_entries_share_an_l2_table(self):
        for l1_cluster in (1, 5):
            b = qb.Qcow2Builder(2 * PER_TABLE * CS)
            b.l1_at(l1_cluster)
            b.l2(0, 2)
            b.l2(1, 2)
            content = b.data(3, 3)
            b.data(1, 4)
            b.guest[PER_TABLE + 3] = content
            b.guest[PER_TABLE + 1] = b.guest[1]
            self.assertDecodes(b)

    def test_one_host_cluster_mapped_twice_ahead(self):
        b = qb.Qcow2Builder(4 * CS)
        b.l2(0, 2)
        content = b.data(0, 3)
        b.entry(2, qb.COPIED | 3 * CS)
        b.guest[2] = content
        at = b.compressed(1, 4 * CS + 300)
        b.entry(3, qb.compressed_entry(4 * CS + 300, at - 4 * CS - 300, 16))
        b.guest[3] = b.guest[1]
        self.assertDecodes(b)

    def mixed(self, extra=0):
        """Late, future, packed and spilled clusters, ``extra`` more."""
        b = qb.Qcow2Builder((8 + extra) * CS - 1024)
        b.data(4, 1)
        at = b.compressed(0, 2 * CS + 40000)
        at = b.compressed(1, at)
        b.compressed(2, at)
        b.l1_at(4)
        b.l2(0, 5)
        b.data(3, 6)
        b.compressed(5, 7 * CS)
        b.data(7, 8, os.urandom(CS - 1024) + bytes(1024))
        for guest in range(8, 8 + extra):
            b.data(guest, guest + 1)
        return b

    def test_tiny_writes(self):
        b = self.mixed()
        for chunk in (1, 7):
            self.assertDecodes(b, chunk=chunk)

    def test_write_sizes(self):
        b = self.mixed(extra=60)
        image = b.build()
        self.assertGreater(len(image), 3 * 1024 * 1024 + CS)
        for chunk in (4096, CS - 1, CS, CS + 1, 3 * 1024 * 1024,
                      len(image)):
            self.assertDecodes(b, image, chunk=chunk)


class TestRefusals(DecoderTestCase):
    """What qemu never writes refuses the image, naming the problem."""

    def test_unaligned_l2_table(self):
        b = qb.Qcow2Builder(2 * CS)
        b.l1_word(0, qb.COPIED | 2 * CS + 512)
        self.assertRefused(b.build(length=4 * CS), 'unaligned L2 table')

    def test_unaligned_data_cluster(self):
        b = qb.Qcow2Builder(2 * CS)
        b.l2(0, 2)
        b.entry(1, qb.COPIED | 3 * CS + 4096)
        self.assertRefused(b.build(length=5 * CS),
                           'unaligned data cluster at %d' % (3 * CS + 4096))

    def test_unaligned_zero_cluster(self):
        b = qb.Qcow2Builder(2 * CS)
        b.l2(0, 2)
        b.entry(1, qb.COPIED | 3 * CS + 4096 | 1)
        self.assertRefused(b.build(length=5 * CS),
                           'unaligned data cluster at %d' % (3 * CS + 4096))

    def test_data_cluster_on_its_own_l2_table(self):
        b = qb.Qcow2Builder(2 * CS)
        b.l2(0, 2)
        b.entry(0, qb.COPIED | 2 * CS)
        self.assertRefused(b.build(), 'cluster at %d is used twice' % (
            2 * CS))

    def test_data_cluster_on_an_earlier_l2_table(self):
        b = qb.Qcow2Builder(2 * PER_TABLE * CS)
        b.l2(0, 2)
        b.l2(1, 3)
        b.entry(PER_TABLE, qb.COPIED | 2 * CS)
        self.assertRefused(b.build(), 'used twice')

    def test_data_cluster_on_the_l1_table(self):
        b = qb.Qcow2Builder(2 * CS)
        b.l2(0, 2)
        b.entry(0, qb.COPIED | CS)
        self.assertRefused(b.build(), 'used twice')

    def test_data_cluster_already_placed(self):
        b = qb.Qcow2Builder(2 * PER_TABLE * CS)
        b.l2(0, 2)
        b.data(0, 3)
        b.l2(1, 4)
        b.entry(PER_TABLE, qb.COPIED | 3 * CS)
        self.assertRefused(b.build(), 'used twice')

    def test_l2_table_on_the_l1_table(self):
        b = qb.Qcow2Builder(2 * PER_TABLE * CS)
        b.l2(0, 2)
        b.data(0, 3)
        b.l1_word(1, qb.COPIED | CS)
        self.assertRefused(b.build(), 'cluster at %d is used twice' % CS)

    def test_compressed_data_in_the_header_cluster(self):
        # Valid compressed data after the header: the header cluster is
        # the header's, as an L2 table's cluster is the table's.
        b = qb.Qcow2Builder(2 * CS)
        b.l2(0, 2)
        b.compressed(0, 4096)
        self.assertRefused(b.build(), 'used twice')

    def test_zero_flag_in_version_2(self):
        b = qb.Qcow2Builder(2 * CS, version=2)
        b.l2(0, 2)
        b.zero(1)
        self.assertRefused(b.build(), 'zero flag in a version 2 image')

    def test_corrupt_compressed_cluster(self):
        for method in ('zlib', 'zstd'):
            b = qb.Qcow2Builder(2 * CS, compression=method)
            b.l2(0, 2)
            b.compressed(0, 3 * CS, payload=b'\xff' * 700)
            self.assertRefused(b.build(), 'corrupt compressed cluster')

    def _short(self, method):
        b = qb.Qcow2Builder(2 * CS, compression=method)
        b.l2(0, 2)
        b.compressed(0, 3 * CS, payload=qb.compress(
            os.urandom(CS // 2), method))
        self.assertRefused(b.build(), 'a compressed cluster decompresses '
                           'to %d bytes' % (CS // 2))

    def test_zlib_cluster_short_of_a_cluster(self):
        self._short('zlib')

    def test_zstd_cluster_short_of_a_cluster(self):
        # The frame ends early; the zero padding after it is not another
        # frame to read.
        self._short('zstd')

    def test_compressed_range_cut_short(self):
        for method in ('zlib', 'zstd'):
            b = qb.Qcow2Builder(2 * CS, compression=method)
            b.l2(0, 2)
            payload = qb.compress(os.urandom(CS), method)
            b.compressed(0, 3 * CS, payload=payload[:len(payload) // 2])
            b.put(3 * CS + len(payload) // 2, b'\x01' * 4096)
            self.assertRefused(b.build(), 'compressed cluster')

    def test_tables_and_clusters_past_the_end_of_the_file(self):
        b = qb.Qcow2Builder(2 * CS)
        b.l1_at(5)
        self.assertRefused(b.build(length=3 * CS + 100), 'past the end')
        b = qb.Qcow2Builder(2 * CS)
        b.l2(0, 6)
        self.assertRefused(b.build(length=3 * CS), 'past the end')
        b = qb.Qcow2Builder(2 * CS)
        b.l2(0, 2)
        b.data(0, 3)
        b.data(1, 7)
        self.assertRefused(b.build(length=5 * CS), 'past the end')
        b = qb.Qcow2Builder(2 * CS)
        b.l2(0, 2)
        b.compressed(1, 6 * CS + 512)
        self.assertRefused(b.build(length=4 * CS), 'past the end')

    def test_message_masks_the_href(self):
        b = qb.Qcow2Builder(2 * CS, version=2)
        b.l2(0, 2)
        b.zero(0)
        error = self.assertRefused(
            b.build(), 'zero flag',
            href='https://user:s3cret@example.com/a.qcow2')
        self.assertNotIn('s3cret', str(error))
        self.assertIn('example.com/a.qcow2', str(error))

    def _bomb(self, method, size):
        b = qb.Qcow2Builder(2 * CS, compression=method)
        b.l2(0, 2)
        if method == 'zstd':
            payload = zstandard.ZstdCompressor().compress(b'\x01' * size)
        else:
            payload = qb.compress(b'\x01' * size, method)
        self.assertLess(len(payload), 2 * CS)
        b.compressed(0, 3 * CS, content=b'\x01' * CS, payload=payload)
        return b.build()

    def test_zstd_bomb_is_refused_and_bounded(self):
        # qemu refuses a zstd cluster whose frame goes on past one
        # cluster; reading it must stop one byte past the cluster.
        image = self._bomb('zstd', 256 * CS)
        decoder, disk = self.decoder(image)
        tracemalloc.start()
        try:
            self.assertRaises(exception.ImageUnacceptable,
                              self._write_and_finish, decoder, image)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertLess(peak, 8 * CS)
        self.assertEqual({}, disk.writes)

    def test_zstd_bomb_memory_stays_bounded(self):
        image = self._bomb('zstd', 1024 * CS)
        decoder, _disk = self.decoder(image)
        tracemalloc.start()
        try:
            try:
                self._write_and_finish(decoder, image)
            except exception.ImageUnacceptable:
                pass
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertLess(peak, 8 * CS)

    def test_zlib_bomb_gives_one_cluster(self):
        # qemu fills the cluster and stops (it approves Z_BUF_ERROR).
        image = self._bomb('zlib', 32 * CS)
        decoder, disk = self.decoder(image)
        tracemalloc.start()
        try:
            self._write_and_finish(decoder, image)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertLess(peak, 8 * CS)
        self.assertEqual(digest({0: b'\x01' * CS}), digest(disk.writes))

    @staticmethod
    def _write_and_finish(decoder, image):
        decoder.write(image)
        decoder.finish()


class TestSpillFile(DecoderTestCase):

    def late(self):
        b = qb.Qcow2Builder(3 * CS)
        b.data(0, 2)
        b.l2(0, 3)
        b.data(1, 4)
        return b

    def test_unnamed_and_closed_by_finish(self):
        b = self.late()
        image = b.build()
        decoder, disk = self.decoder(image)
        decoder.write(image[:3 * CS])
        self.assertEqual(1, len(self.made))
        self.assertFalse(self.made[0].closed)
        self.assertEqual([], os.listdir(self.spill_dir))
        decoder.write(image[3 * CS:])
        decoder.finish()
        self.assertTrue(self.made[0].closed)
        self.assertEqual([], os.listdir(self.spill_dir))
        self.assertEqual(digest(b.expected()), digest(disk.nonzero()))

    def test_closed_by_close(self):
        image = self.late().build()
        decoder, _disk = self.decoder(image)
        decoder.write(image[:3 * CS + 100])
        decoder.close()
        self.assertEqual(1, len(self.made))
        self.assertTrue(self.made[0].closed)
        self.assertEqual([], os.listdir(self.spill_dir))

    def test_closed_when_finish_refuses(self):
        b = self.late()
        b.data(2, 9)
        self.assertRefused(b.build(length=6 * CS), 'past the end')
        self.assertEqual(1, len(self.made))

    def test_made_only_when_needed(self):
        # Nothing in an in-order image is read twice: the header cluster
        # is the header's, the tables and data are placed as they come.
        b = qb.Qcow2Builder(3 * CS)
        b.l2(0, 2)
        b.data(0, 3)
        b.data(2, 4)
        self.assertDecodes(b)
        self.assertEqual([], self.made)

    def test_made_once_for_many_clusters(self):
        b = qb.Qcow2Builder(6 * CS)
        for guest in range(5):
            b.data(guest, guest + 1)
        b.l2(0, 6)
        b.l1_at(7)
        self.assertDecodes(b)
        self.assertEqual(1, len(self.made))
