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

import io
import os
import zlib

import fixtures
import zstandard

from ironic_images import exception
from ironic_images import image_sink
from ironic_images.tests import base
from ironic_images import transfer

BLOCK = image_sink.SPARSE_BLOCK
IMAGE = (os.urandom(BLOCK + 100) + bytes(40 * BLOCK) + os.urandom(10)
         + bytes(3 * BLOCK))


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
                    raise transfer.RestartTransfer(len(IMAGE))
                return self.source.readinto(buffer)

        sink = self._sink()
        transfer.stream(Restarting(), [transfer.FileWriter(sink)], 'href',
                        expected_size=len(IMAGE), chunk_size=64 * 1024)
        sink.finish()
        with open(self.path, 'rb') as image:
            self.assertEqual(IMAGE, image.read())
