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

"""Tests of the outputs an image sink writes to.

A DeviceOutput is exercised on a regular file filled with 0xFF: it takes
the file's length for the device's size, 512 bytes for its block, and
writes zeros where the kernel refuses BLKZEROOUT (ENOTTY). The real
devices are in tests/functional/test_destinations.py.
"""

import errno
import os
import random

import fixtures

from ironic_images import exception
from ironic_images.formats import inspection
from ironic_images.sink import device_output
from ironic_images.sink import image_sink
from ironic_images.sink import outputs
from ironic_images.tests import base

FILL = b'\xff'
SIZE = 256 * 1024


class DeviceOutputTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.images_dir, 'device')
        with open(self.path, 'wb') as f:
            f.write(FILL * SIZE)

    def output(self, **kwargs):
        out = device_output.DeviceOutput(self.path, 'href', **kwargs)
        self.addCleanup(out.close)
        return out

    def content(self):
        with open(self.path, 'rb') as f:
            return f.read()

    def check_model(self, seed, direct_io):
        """Random writes, mostly in order, some behind, none aligned."""
        rng = random.Random(seed)
        out = self.output(direct_io=direct_io)
        expected = bytearray(FILL * SIZE)
        written = bytearray(SIZE)  # 1 where the model has data
        position = 0
        end = 0
        while position < SIZE - 4096:
            if rng.random() < 0.2 and end > 0:
                offset = rng.randrange(0, end)  # behind the frontier
            else:
                offset = position + rng.choice((0, 0, rng.randrange(
                    1, 3000), rng.randrange(3000, 40000)))
            length = rng.randrange(1, 9000)
            if offset + length > SIZE - 1000:
                break
            data = bytes(rng.randrange(1, 256) for _ in range(length))
            out.pwrite(data, offset)
            expected[offset:offset + length] = data
            written[offset:offset + length] = b'\x01' * length
            position = max(position, offset + length)
            end = max(end, offset + length)
        length = end + rng.randrange(0, 1000)
        out.finish(length)
        out.sync()
        for i in range(length):
            if not written[i]:
                expected[i] = 0
        got = self.content()
        if got != bytes(expected):
            first = next(i for i in range(SIZE) if got[i] != expected[i])
            self.fail('seed %d: differs at %d: %r != %r' % (
                seed, first, got[first:first + 4], expected[first:first + 4]))

    def test_random_writes_with_a_small_buffer(self):
        self.useFixture(fixtures.MockPatchObject(
            device_output, 'STAGE_BYTES', 4096))
        for seed in range(8):
            with open(self.path, 'wb') as f:
                f.write(FILL * SIZE)
            self.check_model(seed, direct_io=False)

    def test_random_writes_one_at_a_time(self):
        self.useFixture(fixtures.MockPatchObject(
            device_output, 'STAGE_BYTES', 4096))
        self.useFixture(fixtures.MockPatchObject(
            device_output, 'WORKERS', 1))
        for seed in range(20, 24):
            with open(self.path, 'wb') as f:
                f.write(FILL * SIZE)
            self.check_model(seed, direct_io=False)

    def test_a_failed_write_is_raised_by_a_later_call(self):
        out = self.output()
        self.useFixture(fixtures.MockPatchObject(
            device_output.os, 'pwrite',
            side_effect=OSError(errno.EIO, 'I/O error')))
        out.pwrite(b'\x01' * 4096, 0)
        error = self.assertRaises(OSError, out.sync)
        self.assertEqual(errno.EIO, error.errno)
        self.assertTrue(out.touched)

    def test_random_writes_direct(self):
        for seed in range(8, 12):
            with open(self.path, 'wb') as f:
                f.write(FILL * SIZE)
            self.check_model(seed, direct_io=True)

    def test_holes_are_zeroed_and_nothing_past_the_disk_changes(self):
        out = self.output()
        out.pwrite(b'\x01' * 100, 1000)
        out.pwrite(b'\x02' * 100, 70000)
        out.finish(100000)
        out.sync()
        expected = (bytes(1000) + b'\x01' * 100 + bytes(68900)
                    + b'\x02' * 100 + bytes(29900)
                    + FILL * (SIZE - 100000))
        self.assertEqual(expected, self.content())

    def test_a_write_behind_the_frontier_lands_on_zeros(self):
        out = self.output()
        out.pwrite(b'\x02' * 10, 50000)
        out.pwrite(b'\x01' * 10, 20000)
        out.finish(60000)
        data = self.content()
        self.assertEqual(b'\x01' * 10, data[20000:20010])
        self.assertEqual(bytes(20000), data[:20000])
        self.assertEqual(bytes(29990), data[20010:50000])

    def test_nothing_touched_before_the_buffer_is_written(self):
        out = self.output()
        out.pwrite(b'\x01' * 100, 0)
        self.assertFalse(out.touched)
        self.assertEqual(FILL * SIZE, self.content())
        out.sync()
        self.assertTrue(out.touched)

    def test_a_disk_larger_than_the_device_is_refused(self):
        out = self.output()
        error = self.assertRaises(exception.ImageUnacceptable, out.pwrite,
                                  b'x', SIZE)
        self.assertEqual('device_size', error.kwargs['check'])
        self.assertRaises(exception.ImageUnacceptable, out.finish, SIZE + 1)
        self.assertFalse(out.touched)
        self.assertEqual(FILL * SIZE, self.content())

    def test_reset_writes_again_from_the_start(self):
        out = self.output()
        out.pwrite(b'\x01' * 5000, 3000)
        out.reset()
        out.pwrite(b'\x02' * 10, 6000)
        out.finish(7000)
        data = self.content()
        self.assertEqual(bytes(6000) + b'\x02' * 10 + bytes(990),
                         data[:7000])


class StreamOutputTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        read_end, write_end = os.pipe()
        self.reader = os.fdopen(read_end, 'rb')
        self.addCleanup(self.reader.close)
        self.out = outputs.StreamOutput(write_end, 'pipe', 'href')
        self.addCleanup(self.out.close)

    def test_holes_are_written_as_zeros_in_order(self):
        self.out.pwrite(b'ab', 3)
        self.out.pwrite(b'cd', 5)
        self.out.finish(10)
        self.out.sync()  # EINVAL on a pipe: nothing to do
        self.out.close()
        self.assertEqual(b'\0\0\0abcd\0\0\0', self.reader.read())
        self.assertTrue(self.out.touched)

    def test_going_back_is_refused(self):
        self.out.pwrite(b'abc', 0)
        self.assertRaises(exception.ImageDownloadFailed, self.out.pwrite,
                          b'x', 1)
        self.assertRaises(exception.ImageDownloadFailed, self.out.reset)

    def test_reset_before_the_first_byte(self):
        self.out.reset()
        self.assertFalse(self.out.touched)


class ChooseOutputTestCase(base.TestCase):
    """The sink holds the first bytes until the inspector decides."""

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.images_dir, 'out')
        self.file = open(self.path, 'w+b', buffering=0)
        self.addCleanup(self.file.close)
        self.calls = []

    def choose(self, detected, head, compression):
        self.calls.append((detected.format if detected else None,
                           len(head), compression))
        return outputs.FileOutput(self.file.fileno(), self.path), False

    def sink(self):
        return image_sink.ImageSink(
            None, 'href', inspector=inspection.StreamInspector('href'),
            choose_output=self.choose)

    def test_asked_once_the_inspector_has_decided(self):
        data = os.urandom(3 * 1024 * 1024)
        sink = self.sink()
        for start in range(0, len(data), 256 * 1024):
            sink.write(data[start:start + 256 * 1024])
            if start + 256 * 1024 < inspection.HEAD_SIZE:
                self.assertEqual([], self.calls)
        result = sink.finish()
        self.assertEqual([('raw', inspection.HEAD_SIZE, None)], self.calls)
        self.assertEqual(len(data), result.size)
        self.assertEqual(data, self.file.read())

    def test_asked_at_the_end_of_a_short_image(self):
        sink = self.sink()
        sink.write(b'x' * 1000)
        self.assertEqual([], self.calls)
        sink.finish()
        self.assertEqual([('raw', 1000, None)], self.calls)

    def test_a_refusal_writes_nothing(self):
        def refuse(detected, head, compression):
            raise exception.ImageUnacceptable(image_href='href', reason='no')

        sink = image_sink.ImageSink(
            None, 'href', inspector=inspection.StreamInspector('href'),
            choose_output=refuse)
        self.assertRaises(exception.ImageUnacceptable, sink.write,
                          os.urandom(2 * 1024 * 1024))
        self.assertEqual(0, os.path.getsize(self.path))
