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

"""Tests of the streaming pipeline."""

import errno
import hashlib
import io
import os
import threading
import time

from ironic_images import exception
from ironic_images.tests import base
from ironic_images.transfer import file_writer
from ironic_images.transfer import pipeline

HREF = 'http://images.example.com/x.img'


def _data(size):
    # Not a repeating pattern with a short period: a reordered or reused
    # buffer changes the digest.
    block = hashlib.sha512(b'seed').digest()
    out = bytearray()
    counter = 0
    while len(out) < size:
        block = hashlib.sha512(block + counter.to_bytes(8, 'big')).digest()
        out += block
        counter += 1
    return bytes(out[:size])


class Collector:
    """A stage that keeps a copy of everything and where it ran."""

    def __init__(self, delay=0):
        self.chunks = []
        self.threads = set()
        self.finished = 0
        self.delay = delay

    def update(self, data):
        self.threads.add(threading.get_ident())
        if self.delay:
            time.sleep(self.delay)
        self.chunks.append(bytes(data))

    def finish(self):
        self.finished += 1

    @property
    def data(self):
        return b''.join(self.chunks)


class FailingStage:
    """A stage that raises after accepting ``after`` chunks."""

    def __init__(self, error, after=0):
        self.error = error
        self.after = after
        self.calls = 0

    def update(self, data):
        self.calls += 1
        if self.calls > self.after:
            raise self.error


class FailingSource:
    """A source that gives ``good`` bytes, then raises ``error``."""

    def __init__(self, good, error):
        self._good = io.BytesIO(good)
        self.error = error

    def readinto(self, buffer):
        count = self._good.readinto(buffer)
        if not count:
            raise self.error
        return count


class TransferTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.threads_before = set(threading.enumerate())
        self.addCleanup(self._assert_no_thread_left)

    def _assert_no_thread_left(self):
        left = [t for t in threading.enumerate()
                if t not in self.threads_before and t.is_alive()]
        self.assertEqual([], [t.name for t in left])

    def assertNoThreadLeft(self):
        self._assert_no_thread_left()


class StreamTestCase(TransferTestCase):

    def test_bytes_and_digests_through_several_stages(self):
        data = _data(1024 * 1024 + 123)
        sha256 = hashlib.sha256()
        collector = Collector()
        sha512 = hashlib.sha512()
        out = io.BytesIO()
        result = pipeline.stream(
            io.BytesIO(data),
            [sha256, collector, file_writer.FileWriter(out), sha512],
            HREF, chunk_size=4096)
        self.assertEqual(len(data), result.size)
        self.assertEqual(hashlib.sha256(data).hexdigest(), sha256.hexdigest())
        self.assertEqual(hashlib.sha512(data).hexdigest(), sha512.hexdigest())
        self.assertEqual(data, collector.data)
        self.assertEqual(data, out.getvalue())
        self.assertEqual(1, collector.finished)
        self.assertNoThreadLeft()

    def test_stages_run_in_their_own_threads(self):
        first, second = Collector(), Collector()
        pipeline.stream(io.BytesIO(_data(10000)), [first, second], HREF,
                        chunk_size=1000)
        me = threading.get_ident()
        self.assertEqual(1, len(first.threads))
        self.assertEqual(1, len(second.threads))
        self.assertNotIn(me, first.threads | second.threads)
        self.assertNotEqual(first.threads, second.threads)

    def test_slow_stage_keeps_data_intact(self):
        # The pool recycles buffers: a slow last stage must still see every
        # chunk exactly as read, never one overwritten by a later read.
        data = _data(64 * 1024)
        fast, slow = Collector(), Collector(delay=0.001)
        pipeline.stream(io.BytesIO(data), [fast, slow], HREF,
                        chunk_size=1024)
        self.assertEqual(data, fast.data)
        self.assertEqual(data, slow.data)

    def test_no_stages(self):
        result = pipeline.stream(io.BytesIO(b'x' * 5000), [], HREF,
                                 chunk_size=1000)
        self.assertEqual(5000, result.size)

    def test_default_chunk_size_from_config(self):
        self.config(chunk_size=64 * 1024, group='download')
        collector = Collector()
        data = _data(200 * 1024)
        pipeline.stream(io.BytesIO(data), [collector], HREF)
        self.assertEqual([64 * 1024] * 3 + [8 * 1024],
                         [len(c) for c in collector.chunks])
        self.assertEqual(data, collector.data)

    def test_expected_size_exact(self):
        data = _data(3000)
        collector = Collector()
        result = pipeline.stream(io.BytesIO(data), [collector], HREF,
                                 expected_size=3000, chunk_size=1024)
        self.assertEqual(3000, result.size)
        self.assertEqual(data, collector.data)

    def test_expected_size_short(self):
        collector = Collector()
        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream,
                                io.BytesIO(_data(1000)), [collector], HREF,
                                expected_size=1500, chunk_size=256)
        self.assertIn('received 1000 bytes, expected 1500', str(exc))
        self.assertIn(HREF, str(exc))
        self.assertNoThreadLeft()

    def test_expected_size_long(self):
        collector = Collector()
        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream,
                                io.BytesIO(_data(2000)), [collector], HREF,
                                expected_size=1500, chunk_size=256)
        self.assertIn('1500', str(exc))
        self.assertIn('more than', str(exc))
        # Bytes beyond the expected size never reach a stage.
        self.assertLessEqual(len(collector.data), 1500)
        self.assertNoThreadLeft()

    def test_expected_size_long_small_body(self):
        # expected_size below chunk_size shrinks the buffers: one more byte
        # than expected must still be caught.
        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream,
                                io.BytesIO(b'abcdefghijk'), [Collector()],
                                HREF, expected_size=10)
        self.assertIn('10', str(exc))

    def test_expected_size_zero(self):
        self.assertEqual(0, pipeline.stream(io.BytesIO(b''), [Collector()],
                                            HREF, expected_size=0).size)
        self.assertRaises(exception.ImageDownloadFailed, pipeline.stream,
                          io.BytesIO(b'x'), [Collector()], HREF,
                          expected_size=0)

    def test_max_size(self):
        collector = Collector()
        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream,
                                io.BytesIO(_data(1000)), [collector], HREF,
                                max_size=300, chunk_size=64)
        self.assertIn('300', str(exc))
        self.assertLessEqual(len(collector.data), 300)
        self.assertNoThreadLeft()

    def test_max_size_not_reached(self):
        data = _data(300)
        collector = Collector()
        result = pipeline.stream(io.BytesIO(data), [collector], HREF,
                                 max_size=300, chunk_size=64)
        self.assertEqual(300, result.size)
        self.assertEqual(data, collector.data)

    def test_max_size_applies_with_expected_size(self):
        # A source that declares more than max_size is still refused.
        collector = Collector()
        self.assertRaises(exception.ImageDownloadFailed, pipeline.stream,
                          io.BytesIO(_data(1000)), [collector], HREF,
                          expected_size=1000, max_size=300, chunk_size=64)
        self.assertLessEqual(len(collector.data), 300)

    def test_stage_enospc(self):
        full = FailingStage(OSError(errno.ENOSPC, 'No space left on device'),
                            after=2)
        before, after = Collector(), Collector()
        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream,
                                io.BytesIO(_data(100 * 1024)),
                                [before, full, after], HREF,
                                chunk_size=1024)
        self.assertIn('No space left on device', str(exc))
        self.assertIn(HREF, str(exc))
        self.assertNotIsInstance(exc, OSError)
        # The failing stage stopped the transfer early.
        self.assertLess(len(before.data), 100 * 1024)
        self.assertEqual(0, after.finished)
        self.assertNoThreadLeft()

    def test_stage_raises_our_exception(self):
        error = exception.ImageChecksumError(image_href=HREF,
                                             algorithm='sha256',
                                             expected='a', actual='b')
        exc = self.assertRaises(exception.ImageChecksumError,
                                pipeline.stream, io.BytesIO(_data(5000)),
                                [FailingStage(error)], HREF,
                                chunk_size=1000)
        self.assertIs(error, exc)
        self.assertNoThreadLeft()

    def test_stage_raises_other_error(self):
        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream, io.BytesIO(_data(5000)),
                                [FailingStage(ValueError('bad chunk'))],
                                HREF, chunk_size=1000)
        self.assertIn('ValueError: bad chunk', str(exc))
        self.assertNoThreadLeft()

    def test_finish_raises(self):
        class Finisher(Collector):
            def finish(self):
                raise OSError(errno.EIO, 'Input/output error')

        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream, io.BytesIO(b'abc'),
                                [Finisher()], HREF)
        self.assertIn('Input/output error', str(exc))
        self.assertNoThreadLeft()

    def test_source_raises_midway(self):
        data = _data(5000)
        collector = Collector()
        source = FailingSource(
            data, OSError(errno.ECONNRESET, 'Connection reset by peer'))
        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream, source, [collector], HREF,
                                chunk_size=1000)
        self.assertIn('Connection reset by peer', str(exc))
        # Stages stop at the first failure: at most what was read.
        self.assertTrue(data.startswith(collector.data))
        self.assertNoThreadLeft()

    def test_source_raises_our_exception(self):
        error = exception.TemporaryFailure(image_href=HREF, reason='503')
        exc = self.assertRaises(exception.TemporaryFailure, pipeline.stream,
                                FailingSource(b'x' * 10, error),
                                [Collector()], HREF, chunk_size=4)
        self.assertIs(error, exc)
        self.assertNoThreadLeft()

    def test_source_keyboard_interrupt(self):
        self.assertRaises(KeyboardInterrupt, pipeline.stream,
                          FailingSource(b'x' * 10, KeyboardInterrupt()),
                          [Collector(), hashlib.sha256()], HREF,
                          chunk_size=4)
        self.assertNoThreadLeft()

    def test_cancel_before_start(self):
        cancel = threading.Event()
        cancel.set()
        collector = Collector()
        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream, io.BytesIO(_data(5000)),
                                [collector], HREF, cancel=cancel,
                                chunk_size=1000)
        self.assertIn('cancelled', str(exc))
        self.assertEqual(b'', collector.data)
        self.assertNoThreadLeft()

    def test_cancel_midway(self):
        cancel = threading.Event()
        collector = Collector()

        def progress(done, total):
            if done >= 3000:
                cancel.set()

        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream, io.BytesIO(_data(10000)),
                                [collector], HREF, cancel=cancel,
                                progress=progress, chunk_size=1000)
        self.assertIn('cancelled', str(exc))
        self.assertLessEqual(len(collector.data), 3000)
        self.assertNoThreadLeft()

    def test_progress(self):
        calls = []
        pipeline.stream(io.BytesIO(_data(10000)), [Collector()], HREF,
                        expected_size=10000, chunk_size=999,
                        progress=lambda done, total: calls.append(
                            (done, total)))
        dones = [done for done, _total in calls]
        self.assertEqual(sorted(dones), dones)
        self.assertEqual(len(set(dones)), len(dones))
        self.assertEqual(10000, dones[-1])
        self.assertEqual({10000}, {total for _done, total in calls})
        self.assertEqual(11, len(calls))

    def test_progress_unknown_total(self):
        calls = []
        pipeline.stream(io.BytesIO(b'x' * 2500), [], HREF, chunk_size=1000,
                        progress=lambda done, total: calls.append(
                            (done, total)))
        self.assertEqual([(1000, None), (2000, None), (2500, None)], calls)

    def test_progress_raising_fails_cleanly(self):
        def progress(done, total):
            raise RuntimeError('display gone')

        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream, io.BytesIO(b'x' * 2500),
                                [Collector()], HREF, chunk_size=1000,
                                progress=progress)
        self.assertIn('display gone', str(exc))
        self.assertNoThreadLeft()

    def test_empty_source(self):
        collector = Collector()
        sha = hashlib.sha256()
        calls = []
        result = pipeline.stream(io.BytesIO(b''), [sha, collector], HREF,
                                 progress=lambda *a: calls.append(a))
        self.assertEqual(0, result.size)
        self.assertEqual(b'', collector.data)
        self.assertEqual(hashlib.sha256(b'').hexdigest(), sha.hexdigest())
        self.assertEqual([], calls)
        self.assertEqual(1, collector.finished)

    def test_tiny_chunk_size(self):
        data = _data(1000)
        collector = Collector()
        sha = hashlib.sha256()
        result = pipeline.stream(io.BytesIO(data), [sha, collector], HREF,
                                 chunk_size=1)
        self.assertEqual(1000, result.size)
        self.assertEqual(1000, len(collector.chunks))
        self.assertEqual(data, collector.data)
        self.assertEqual(hashlib.sha256(data).hexdigest(), sha.hexdigest())

    def test_raw_file_source(self):
        data = _data(300 * 1024)
        path = os.path.join(self.images_dir, 'src')
        with open(path, 'wb') as f:
            f.write(data)
        dest = os.path.join(self.images_dir, 'dest')
        with open(path, 'rb', buffering=0) as src, open(dest, 'wb') as out:
            pipeline.stream(src, [file_writer.FileWriter(out)], HREF,
                            expected_size=len(data), chunk_size=65536)
        with open(dest, 'rb') as f:
            self.assertEqual(data, f.read())


class IterableSourceTestCase(TransferTestCase):

    def test_odd_sized_chunks(self):
        data = _data(10007)
        pieces, offset, size = [], 0, 1
        while offset < len(data):
            pieces.append(data[offset:offset + size])
            offset += size
            size = size * 3 % 1013 + 1
        # Mixed types: bytes, bytearray, memoryview; and empty chunks.
        mixed = []
        for index, piece in enumerate(pieces):
            mixed.append((bytes, bytearray, memoryview)[index % 3](piece))
            if index % 5 == 0:
                mixed.append(b'')
        collector = Collector()
        result = pipeline.stream(pipeline.IterableSource(mixed), [collector],
                                 HREF, expected_size=len(data),
                                 chunk_size=777)
        self.assertEqual(len(data), result.size)
        self.assertEqual(data, collector.data)
        # Buffers are filled completely except the last one.
        self.assertEqual({777}, {len(c) for c in collector.chunks[:-1]})

    def test_readinto_directly(self):
        source = pipeline.IterableSource([b'abc', b'', b'defgh'])
        buffer = bytearray(4)
        self.assertEqual(3, source.readinto(buffer))
        self.assertEqual(b'abc', bytes(buffer[:3]))
        self.assertEqual(4, source.readinto(buffer))
        self.assertEqual(b'defg', bytes(buffer))
        self.assertEqual(1, source.readinto(buffer))
        self.assertEqual(b'h', bytes(buffer[:1]))
        self.assertEqual(0, source.readinto(buffer))
        self.assertEqual(0, source.readinto(buffer))

    def test_empty_iterable(self):
        self.assertEqual(0, pipeline.stream(pipeline.IterableSource([]),
                                            [Collector()], HREF).size)

    def test_generator_raising(self):
        def chunks():
            yield b'a' * 100
            raise ConnectionResetError(errno.ECONNRESET, 'reset')

        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream,
                                pipeline.IterableSource(chunks()),
                                [Collector()], HREF, chunk_size=10)
        self.assertIn('Connection reset by peer', str(exc))
        self.assertNoThreadLeft()
