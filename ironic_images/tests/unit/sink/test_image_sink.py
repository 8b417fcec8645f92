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
import io
import os
from unittest import mock
import zlib

import fixtures
import zstandard

from ironic_images import exception
from ironic_images.formats import inspection
from ironic_images.sink import image_sink
from ironic_images.sink import outputs
from ironic_images.sink import qcow2_stream
from ironic_images.tests import base
from ironic_images.tests.unit.sink import qcow2_builder
from ironic_images.transfer import file_writer
from ironic_images.transfer import pipeline

BLOCK = image_sink.SPARSE_BLOCK
IMAGE = (os.urandom(BLOCK + 100) + bytes(40 * BLOCK) + os.urandom(10)
         + bytes(3 * BLOCK))
QCS = 64 * 1024


class RecordingInspector:
    """Counts what it is fed; complete after ``needed`` bytes."""

    def __init__(self, needed=4096):
        self.needed = needed
        self.seen = bytearray()
        self.resets = 0
        self.finished = False

    def update(self, data):
        self.seen += data

    @property
    def complete(self):
        return len(self.seen) >= self.needed

    def reset(self):
        self.seen = bytearray()
        self.resets += 1

    def finish(self, size):
        self.finished = size

    def result(self):
        return bytes(self.seen[:16])


class TestImageSink(base.TestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(
            self.useFixture(fixtures.TempDir()).path, 'image')
        self.file = open(self.path, 'wb', buffering=0)
        self.addCleanup(self.file.close)

    def _sink(self, **kwargs):
        return image_sink.ImageSink(self.file, 'href', **kwargs)

    def _write_all(self, sink, data, piece=1024 * 1024):
        for start in range(0, len(data), piece):
            sink.write(data[start:start + piece])
        return sink.finish()

    def test_small_writes_are_exact(self):
        self._write_all(self._sink(), IMAGE, piece=3000)
        with open(self.path, 'rb') as image:
            self.assertEqual(IMAGE, image.read())

    def test_plain_bytes_written_sparse(self):
        result = self._write_all(self._sink(), IMAGE)
        with open(self.path, 'rb') as image:
            self.assertEqual(IMAGE, image.read())
        self.assertEqual(len(IMAGE), result.size)
        self.assertEqual(len(IMAGE), result.received)
        self.assertIsNone(result.compression)
        # The 40 zero blocks and the trailing 3 are holes.
        self.assertLess(os.stat(self.path).st_blocks * 512, 8 * BLOCK)

    def test_not_sparse_writes_every_block(self):
        self._write_all(self._sink(sparse=False), IMAGE)
        self.assertGreaterEqual(os.stat(self.path).st_blocks * 512,
                                len(IMAGE) - BLOCK)

    def test_decompresses_by_magic_and_inspects_the_output(self):
        inspector = RecordingInspector(needed=2 * BLOCK)
        compressed = zstandard.ZstdCompressor().compress(IMAGE)
        result = self._write_all(self._sink(inspector=inspector),
                                 compressed, piece=5)
        with open(self.path, 'rb') as image:
            self.assertEqual(IMAGE, image.read())
        self.assertEqual('zstd', result.compression)
        self.assertEqual(len(compressed), result.received)
        self.assertEqual(IMAGE[:16], result.detected)
        self.assertEqual(len(IMAGE), inspector.finished)
        # Fed until complete, not the whole image.
        self.assertLess(len(inspector.seen), 4 * BLOCK)
        self.assertEqual(IMAGE[:len(inspector.seen)], inspector.seen)

    def test_decompression_off_keeps_the_bytes(self):
        compressed = zlib.compress(IMAGE)
        gz = zstandard.ZstdCompressor().compress(compressed)
        self._write_all(self._sink(decompress=False), gz)
        with open(self.path, 'rb') as image:
            self.assertEqual(gz, image.read())

    def test_short_stream_below_the_magic_length(self):
        result = self._write_all(self._sink(), b'abc')
        self.assertEqual(3, result.size)
        with open(self.path, 'rb') as image:
            self.assertEqual(b'abc', image.read())

    def test_empty_stream(self):
        result = self._sink().finish()
        self.assertEqual(0, result.size)

    def test_rewind_starts_everything_over(self):
        inspector = RecordingInspector()
        sink = self._sink(inspector=inspector)
        sink.write(zstandard.ZstdCompressor().compress(b'x' * 100000))
        self.assertEqual(0, sink.seek(0))
        sink.truncate()
        result = self._write_all(sink, IMAGE)
        self.assertIsNone(result.compression)
        self.assertEqual(1, inspector.resets)
        with open(self.path, 'rb') as image:
            self.assertEqual(IMAGE, image.read())

    def test_only_rewind_is_supported(self):
        sink = self._sink()
        sink.write(b'0123456789')
        self.assertRaises(io.UnsupportedOperation, sink.seek, 5)
        self.assertRaises(io.UnsupportedOperation, sink.truncate)
        self.assertRaises(io.UnsupportedOperation, sink.fileno)

    def test_truncated_compressed_stream_fails_at_finish(self):
        sink = self._sink()
        sink.write(zstandard.ZstdCompressor().compress(IMAGE)[:-50])
        self.assertRaises(exception.ImageDownloadFailed, sink.finish)

    def test_bomb_stops_at_the_cap(self):
        sink = self._sink(max_decompressed_size=4 * 1024 * 1024)
        bomb = zstandard.ZstdCompressor().compress(bytes(64 * 1024 * 1024))
        self.assertRaises(exception.ImageUnacceptable, sink.write, bomb)

    def test_through_the_pipeline_with_a_restart(self):
        class Restarting:
            """Sends half the image, then restarts from byte 0."""

            def __init__(self):
                self.source = io.BytesIO(IMAGE)
                self.restarted = False

            def readinto(self, buffer):
                if (not self.restarted
                        and self.source.tell() >= len(IMAGE) // 2):
                    self.restarted = True
                    self.source.seek(0)
                    raise pipeline.RestartTransfer(len(IMAGE))
                return self.source.readinto(buffer)

        sink = self._sink()
        pipeline.stream(Restarting(), [file_writer.FileWriter(sink)], 'href',
                        expected_size=len(IMAGE), chunk_size=64 * 1024)
        sink.finish()
        with open(self.path, 'rb') as image:
            self.assertEqual(IMAGE, image.read())


class RecordingStreamInspector(inspection.StreamInspector):
    """The real inspector, keeping a copy of what it is fed."""

    def reset(self):
        super().reset()
        self.seen = bytearray()

    def update(self, data):
        self.seen += data
        super().update(data)


def _streamable_qcow2(method='zlib'):
    """A qcow2 that streams, with every kind of cluster.

    Data, all-zero data clusters, a zero-flag and unallocated clusters,
    packed compressed clusters, and a table after its data (spilled).
    """
    b = qcow2_builder.Qcow2Builder(12 * QCS, compression=method)
    b.data(0, 2)
    b.data(1, 3, bytes(QCS))
    b.data(2, 4, bytes(QCS))
    b.l2(0, 5)
    b.zero(3)
    at = b.compressed(4, 6 * QCS + 100)
    at = b.compressed(5, at)
    b.compressed(6, at)
    b.data(8, 7)
    b.data(11, 8, os.urandom(100))
    return b


class TestImageSinkToRaw(base.TestCase):
    """ImageSink(to_raw=True): a streamable qcow2 becomes a raw disk."""

    def setUp(self):
        super().setUp()
        tmp = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(tmp, 'image')
        self.spill_dir = os.path.join(tmp, 'spill')
        os.mkdir(self.spill_dir)
        self.file = open(self.path, 'wb', buffering=0)
        self.addCleanup(self.file.close)
        self.inspector = RecordingStreamInspector('href')
        self.check_space = mock.Mock(return_value=None)
        self.made = self.useFixture(
            qcow2_builder.SpillFiles(self.spill_dir)).made

    def _sink(self, **kwargs):
        kwargs.setdefault('inspector', self.inspector)
        return image_sink.ImageSink(
            self.file, 'href', to_raw=True, spill_dir=self.spill_dir,
            check_space=self.check_space, **kwargs)

    def _write_all(self, sink, data, piece=100000):
        for start in range(0, len(data), piece):
            sink.write(data[start:start + piece])
        return sink.finish()

    def _written(self):
        with open(self.path, 'rb') as image:
            return image.read()

    def assertSameBytes(self, expected, actual):
        # Hashes: a mismatch of two whole disks is too long a message.
        self.assertEqual((len(expected), hashlib.sha256(expected).digest()),
                         (len(actual), hashlib.sha256(actual).digest()))

    def test_streamable_qcow2_becomes_a_sparse_raw_disk(self):
        b = _streamable_qcow2()
        image = b.build()
        result = self._write_all(self._sink(), image)
        self.assertEqual('raw', result.converted)
        self.assertEqual(12 * QCS, result.size)
        self.assertEqual(len(image), result.received)
        self.assertIsNone(result.compression)
        self.assertSameBytes(b.expected_raw(), self._written())
        self.check_space.assert_called_once_with(12 * QCS)
        # Six clusters hold data (the last one 100 bytes); the two
        # all-zero data clusters, the zero-flag and the unallocated
        # ones are holes.
        self.assertLessEqual(os.stat(self.path).st_blocks * 512, 6 * QCS)
        # The spill file was needed, and is gone.
        self.assertEqual(1, len(self.made))
        self.assertTrue(self.made[0].closed)
        self.assertEqual([], os.listdir(self.spill_dir))

    def test_the_inspector_sees_the_qcow2(self):
        b = _streamable_qcow2()
        image = b.build()
        result = self._write_all(self._sink(), image, piece=7000)
        self.assertEqual('qcow2', result.detected.format)
        self.assertEqual(12 * QCS, result.detected.virtual_size)
        seen = bytes(self.inspector.seen)
        self.assertGreaterEqual(len(seen), qcow2_stream.HEADER_BYTES)
        self.assertSameBytes(image[:len(seen)], seen)

    def test_zstd_clusters(self):
        b = _streamable_qcow2('zstd')
        result = self._write_all(self._sink(), b.build())
        self.assertEqual('raw', result.converted)
        self.assertSameBytes(b.expected_raw(), self._written())

    def test_zstd_compressed_qcow2_stream(self):
        b = _streamable_qcow2()
        image = b.build()
        compressed = zstandard.ZstdCompressor().compress(image)
        result = self._write_all(self._sink(), compressed, piece=3000)
        self.assertEqual('zstd', result.compression)
        self.assertEqual('raw', result.converted)
        self.assertEqual(len(compressed), result.received)
        self.assertSameBytes(b.expected_raw(), self._written())
        self.assertEqual('qcow2', result.detected.format)

    def test_qcow2_that_does_not_stream_is_written_as_it_came(self):
        # 4 KiB clusters: qemu-img converts it after the download.
        b = qcow2_builder.Qcow2Builder(64 * 4096, cluster_bits=12)
        b.l2(0, 2)
        b.data(0, 3)
        b.data(5, 4)
        image = b.build()
        result = self._write_all(self._sink(), image, piece=1000)
        self.assertIsNone(result.converted)
        self.assertEqual(len(image), result.size)
        self.assertSameBytes(image, self._written())
        self.assertEqual('qcow2', result.detected.format)
        self.check_space.assert_not_called()
        self.assertEqual([], self.made)

    def test_raw_image_is_written_as_it_came(self):
        result = self._write_all(self._sink(), IMAGE)
        self.assertIsNone(result.converted)
        self.assertEqual(len(IMAGE), result.size)
        self.assertSameBytes(IMAGE, self._written())
        self.assertEqual('raw', result.detected.format)
        self.check_space.assert_not_called()

    def test_check_space_refuses_before_anything_is_written(self):
        self.check_space.side_effect = exception.InsufficientDiskSpace(
            path=self.path, image_href='href', required=1, available=0)
        image = _streamable_qcow2().build()
        sink = self._sink()
        sink.write(image[:qcow2_stream.HEADER_BYTES - 1])
        self.assertRaises(exception.InsufficientDiskSpace, sink.write,
                          image[qcow2_stream.HEADER_BYTES - 1:])
        self.check_space.assert_called_once_with(12 * QCS)
        self.assertSameBytes(b'', self._written())

    def test_check_space_refuses_a_short_stream_at_finish(self):
        # A version 2 header alone (72 bytes, fewer than HEADER_BYTES)
        # is decided at finish().
        self.check_space.side_effect = exception.InsufficientDiskSpace(
            path=self.path, image_href='href', required=1, available=0)
        head = qcow2_builder.header(version=2, virtual_size=QCS)
        sink = self._sink(inspector=None)
        sink.write(head)
        self.assertRaises(exception.InsufficientDiskSpace, sink.finish)
        self.check_space.assert_called_once_with(QCS)

    def test_rewind_starts_over_and_drops_the_spill_file(self):
        b = _streamable_qcow2()
        image = b.build()
        sink = self._sink()
        sink.write(image[:4 * QCS + 10])
        self.assertEqual(1, len(self.made))
        self.assertFalse(self.made[0].closed)
        self.assertEqual(0, sink.seek(0))
        self.assertTrue(self.made[0].closed)
        sink.truncate()
        result = self._write_all(sink, image)
        self.assertEqual('raw', result.converted)
        self.assertSameBytes(b.expected_raw(), self._written())
        self.assertEqual(2, len(self.made))
        self.assertTrue(self.made[1].closed)
        self.assertEqual([], os.listdir(self.spill_dir))
        self.assertEqual('qcow2', result.detected.format)

    def test_close_drops_the_spill_file(self):
        # A download that fails mid-image closes the sink, never finishes
        # it: the spill file must not wait for the garbage collector.
        sink = self._sink()
        sink.write(_streamable_qcow2().build()[:4 * QCS + 10])
        self.assertEqual(1, len(self.made))
        sink.close()
        self.assertTrue(self.made[0].closed)

    def test_rewind_from_a_qcow2_to_a_raw_image(self):
        sink = self._sink()
        sink.write(_streamable_qcow2().build()[:5 * QCS])
        sink.seek(0)
        result = self._write_all(sink, IMAGE)
        self.assertIsNone(result.converted)
        self.assertSameBytes(IMAGE, self._written())

    def test_stream_shorter_than_a_header(self):
        result = self._write_all(self._sink(), b'not an image')
        self.assertIsNone(result.converted)
        self.assertSameBytes(b'not an image', self._written())
        self.check_space.assert_not_called()

    def test_truncated_version_3_header(self):
        head = qcow2_builder.header()[:qcow2_stream.HEADER_BYTES - 8]
        result = self._write_all(self._sink(inspector=None), head)
        self.assertIsNone(result.converted)
        self.assertSameBytes(head, self._written())
        self.check_space.assert_not_called()

    def test_corrupt_qcow2_is_refused(self):
        b = qcow2_builder.Qcow2Builder(4 * QCS)
        b.l2(0, 2)
        b.entry(0, qcow2_builder.COPIED | 3 * QCS + 512)
        sink = self._sink()
        error = self.assertRaises(exception.ImageUnacceptable,
                                  self._write_all, sink, b.build(5 * QCS))
        self.assertEqual('qcow2_stream', error.kwargs['check'])

    def test_virtual_size_of_partial_sectors(self):
        # qemu's disk is whole sectors; qemu-img convert drops the rest.
        b = qcow2_builder.Qcow2Builder(3 * QCS + 700)
        b.l2(0, 2)
        b.data(3, 3)
        b.data(0, 4)
        result = self._write_all(self._sink(), b.build())
        self.assertEqual('raw', result.converted)
        self.assertEqual(3 * QCS + 512, result.size)
        self.assertSameBytes(b.expected_raw()[:3 * QCS + 512],
                             self._written())


class TestWriteBehind(base.TestCase):
    """What is kept is pushed to the disk during the transfer."""

    def setUp(self):
        super().setUp()
        tmp = self.useFixture(fixtures.TempDir()).path
        self.file = open(os.path.join(tmp, 'image'), 'wb', buffering=0)
        self.addCleanup(self.file.close)
        self.useFixture(fixtures.MockPatchObject(
            image_sink, 'WRITE_BEHIND_BYTES', 4 * BLOCK))
        self.fadvise = self.useFixture(fixtures.MockPatchObject(
            outputs.os, 'posix_fadvise', autospec=True)).mock

    def written_behind(self, data, **kwargs):
        sink = image_sink.ImageSink(
            self.file, 'href', inspector=inspection.StreamInspector('href'),
            spill_dir=os.path.dirname(self.file.name), **kwargs)
        for start in range(0, len(data), BLOCK):
            sink.write(data[start:start + BLOCK])
        sink.finish()
        return self.fadvise.call_count

    def test_kept_file(self):
        # Every 4 blocks written (holes are not written).
        self.assertEqual(4, self.written_behind(os.urandom(17 * BLOCK),
                                                write_behind=True))
        self.fadvise.assert_called_with(self.file.fileno(), 0, 0,
                                        os.POSIX_FADV_DONTNEED)

    def test_file_read_back(self):
        self.assertEqual(0, self.written_behind(os.urandom(17 * BLOCK)))

    def test_raw_only_and_raw(self):
        # From when the inspector has seen enough to call it raw (1 MiB).
        self.assertEqual(7, self.written_behind(os.urandom(40 * BLOCK),
                                                write_behind='raw'))

    def test_raw_only_and_streamed_qcow2(self):
        b = qcow2_builder.Qcow2Builder(16 * QCS)
        b.refcounts_at(2)
        b.l2(0, 3)
        for guest in range(12):
            b.data(guest, 4 + guest)
        self.assertGreater(self.written_behind(b.build(), to_raw=True,
                                               write_behind='raw'), 0)

    def test_raw_only_and_qcow2_left_to_qemu_img(self):
        # 4 KiB clusters are not streamed: the file is converted later.
        b = qcow2_builder.Qcow2Builder(64 * 4096, cluster_bits=12)
        b.refcounts_at(2)
        b.l2(0, 3)
        for guest in range(60):
            b.data(guest, 4 + guest)
        image = b.build() + os.urandom(17 * BLOCK)
        self.assertEqual(0, self.written_behind(image, to_raw=True,
                                                write_behind='raw'))
        self.assertEqual(0, self.written_behind(image, write_behind='raw'))
