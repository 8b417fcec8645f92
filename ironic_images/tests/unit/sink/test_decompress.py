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

import gzip
import lzma
import os

import zstandard

from ironic_images import exception
from ironic_images.sink import decompress
from ironic_images.tests import base

DATA = os.urandom(300 * 1024) + bytes(5 * 1024 * 1024) + b'tail'


def _compress(name, data):
    if name == 'zstd':
        return zstandard.ZstdCompressor(write_checksum=True).compress(data)
    if name == 'gzip':
        return gzip.compress(data)
    return lzma.compress(data)


def _run(name, compressed, piece=64 * 1024, limit=None):
    out = []
    decoder = decompress.new_decompressor(name, out.append, 'href', limit)
    for start in range(0, len(compressed), piece):
        decoder.write(memoryview(compressed)[start:start + piece])
    decoder.finish()
    return out


class TestDetect(base.TestCase):

    def test_magic_bytes(self):
        for name in ('zstd', 'gzip', 'xz'):
            self.assertEqual(
                name, decompress.detect_compression(_compress(name, b'x')))

    def test_not_compressed(self):
        for head in (b'', b'QFI\xfb\x00\x00\x00\x03', bytes(512), b'\x1f'):
            self.assertIsNone(decompress.detect_compression(head))


class TestDecompressors(base.TestCase):

    def test_round_trip_in_odd_pieces(self):
        for name in ('zstd', 'gzip', 'xz'):
            compressed = _compress(name, DATA)
            for piece in (4093, 1024 * 1024):
                out = _run(name, compressed, piece)
                self.assertEqual(DATA, b''.join(out), (name, piece))

    def test_round_trip_byte_by_byte(self):
        small = DATA[:20000]
        for name in ('zstd', 'gzip', 'xz'):
            out = _run(name, _compress(name, small), piece=1)
            self.assertEqual(small, b''.join(out), name)

    def test_output_pieces_are_bounded(self):
        bomb_input = bytes(64 * 1024 * 1024)
        for name in ('zstd', 'gzip', 'xz'):
            out_sizes = []
            decoder = decompress.new_decompressor(
                name, lambda data: out_sizes.append(len(data)), 'href')
            decoder.write(_compress(name, bomb_input))
            decoder.finish()
            self.assertEqual(len(bomb_input), sum(out_sizes))
            self.assertLessEqual(max(out_sizes), decompress.OUTPUT_PIECE)

    def test_concatenated_members_are_one_image(self):
        for name in ('zstd', 'gzip', 'xz'):
            joined = _compress(name, b'first ') + _compress(name, b'second')
            self.assertEqual(b'first second', b''.join(_run(name, joined)))

    def test_zero_padding_after_a_stream(self):
        # xz's Stream Padding (a multiple of 4 zero bytes, also between
        # streams), and the zeros a block device pads a .gz with: xz -d
        # and gzip -d take both.
        for name in ('gzip', 'xz'):
            padded = (_compress(name, b'first ') + bytes(8)
                      + _compress(name, b'second') + bytes(512))
            for piece in (1, 3, 64 * 1024):
                self.assertEqual(b'first second',
                                 b''.join(_run(name, padded, piece)),
                                 (name, piece))
            self.assertRaises(exception.ImageDownloadFailed, _run, name,
                              _compress(name, b'data') + bytes(4) + b'junk')

    def test_zstd_skippable_frame(self):
        skippable = (0x184D2A53).to_bytes(4, 'little') + (5).to_bytes(
            4, 'little') + b'12345'
        compressed = skippable + _compress('zstd', DATA) + skippable
        self.assertEqual(DATA, b''.join(_run('zstd', compressed, 777)))

    def test_truncated_stream_fails(self):
        for name in ('zstd', 'gzip', 'xz'):
            compressed = _compress(name, DATA)
            for cut in (1, 5, len(compressed) // 2):
                error = self.assertRaises(
                    exception.ImageDownloadFailed, _run, name,
                    compressed[:-cut])
                self.assertIn('href', str(error))

    def test_corrupt_stream_fails(self):
        for name in ('zstd', 'gzip', 'xz'):
            compressed = bytearray(_compress(name, DATA))
            middle = len(compressed) // 2
            compressed[middle:middle + 64] = os.urandom(64)
            self.assertRaises(exception.ImageDownloadFailed, _run, name,
                              bytes(compressed))

    def test_bomb_is_refused_at_the_limit(self):
        bomb = _compress('zstd', bytes(256 * 1024 * 1024))
        self.assertLess(len(bomb), 64 * 1024)
        for name in ('zstd', 'gzip', 'xz'):
            compressed = bomb if name == 'zstd' else _compress(
                name, bytes(32 * 1024 * 1024))
            received = []
            decoder = decompress.new_decompressor(
                name, lambda data: received.append(len(data)), 'href',
                limit=8 * 1024 * 1024)
            error = self.assertRaises(exception.ImageUnacceptable,
                                      decoder.write, compressed)
            self.assertIn('max_decompressed_size', str(error))
            self.assertLessEqual(sum(received), 8 * 1024 * 1024)

    def test_not_zstd_after_a_frame(self):
        compressed = _compress('zstd', b'data') + b'garbage!'
        self.assertRaises(exception.ImageDownloadFailed, _run, 'zstd',
                          compressed)

    def test_gzip_with_zlib_error_is_ours(self):
        decoder = decompress.new_decompressor('gzip', lambda d: None, 'h')
        self.assertRaises(exception.ImageDownloadFailed, decoder.write,
                          b'\x1f\x8b\x08\x00' + os.urandom(100))
