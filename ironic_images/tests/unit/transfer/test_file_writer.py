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

"""Tests of the stage that writes a transfer into a file (direct I/O)."""

import errno
import fcntl
import gzip
import io
import mmap
import os
import tempfile
from unittest import mock

import fixtures

from ironic_images import exception
from ironic_images.image_service.glance import driver as glance
from ironic_images.tests import base
from ironic_images.transfer import file_writer
from ironic_images.transfer import pipeline

HREF = 'http://images.example.com/x.img'
CHUNK = 64 * 1024
# Three whole chunks and a tail that is not a whole number of blocks.
DATA = bytes(range(256)) * (3 * CHUNK // 256) + b'tail' * 250


def _aligned(data):
    """``data`` in page-aligned memory, as the pipeline's buffers are."""
    buffer = mmap.mmap(-1, len(data))
    buffer[:] = data
    return memoryview(buffer)


class FlagSpy(file_writer.FileWriter):
    """A writer that notes the file's O_DIRECT flag after each write.

    Noted in the writer's own thread: a stage of its own would run beside
    the writer and could see the flag of a later write.
    """

    def __init__(self, image_file, **kwargs):
        super().__init__(image_file, **kwargs)
        self._fd = image_file.fileno()
        self.direct_flags = []

    def update(self, data):
        super().update(data)
        flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        self.direct_flags.append(bool(flags & os.O_DIRECT))


class PretendDirectIO(fixtures.Fixture):
    """Direct I/O on any file system: the flag is recorded, not set.

    ``flags`` lists every O_DIRECT bit the writer set, in order.
    """

    def _setUp(self):
        self.flags = []
        real_fcntl = fcntl.fcntl

        def fake_fcntl(fd, command, *args):
            if command != fcntl.F_SETFL:
                return real_fcntl(fd, command, *args)
            self.flags.append(bool(args[0] & os.O_DIRECT))
            return real_fcntl(fd, command, args[0] & ~os.O_DIRECT)

        self.useFixture(fixtures.MockPatchObject(
            file_writer.fcntl, 'fcntl', fake_fcntl))


class TestFileWriter(base.TestCase):

    def setUp(self):
        super().setUp()
        self.directory = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(self.directory, 'image')

    def _stream(self, image_file, writer_class=file_writer.FileWriter,
                **kwargs):
        writer = writer_class(image_file, **kwargs)
        pipeline.stream(io.BytesIO(DATA), [writer], HREF, chunk_size=CHUNK)
        return writer

    def _read(self):
        with open(self.path, 'rb') as image_file:
            return image_file.read()

    def test_regular_file_written_directly(self):
        with open(self.path, 'wb') as image_file:
            spy = self._stream(image_file, FlagSpy)
            self.assertEqual(len(DATA), image_file.tell())
            flags = fcntl.fcntl(image_file.fileno(), fcntl.F_GETFL)
            # The file is the caller's again: writes go on after the data.
            image_file.write(b'after')
        self.assertEqual(DATA + b'after', self._read())
        self.assertFalse(flags & os.O_DIRECT)
        # Whole chunks went to the disk directly; the tail did not.
        direct = base.supports_direct_io(self.directory)
        self.assertEqual([direct, direct, direct, False], spy.direct_flags)
        # Still true once the file is given back.
        self.assertEqual(direct, spy.direct)

    def test_image_smaller_than_a_buffer(self):
        # One piece, not whole blocks: its blocks still go directly.
        pretend = self.useFixture(PretendDirectIO())
        with open(self.path, 'wb') as image_file:
            writer = file_writer.FileWriter(image_file)
            writer.update(_aligned(DATA[:3 * 4096 + 100]))
            writer.close()
            self.assertEqual(3 * 4096 + 100, image_file.tell())
        self.assertEqual(DATA[:3 * 4096 + 100], self._read())
        self.assertTrue(writer.direct)
        self.assertEqual([True, False], pretend.flags)

    def test_option_off(self):
        self.config(direct_io=False, group='download')
        with open(self.path, 'wb') as image_file:
            spy = self._stream(image_file, FlagSpy)
        self.assertEqual(DATA, self._read())
        self.assertEqual([False] * 4, spy.direct_flags)
        self.assertFalse(spy.direct)

    def test_argument_overrides_option(self):
        with open(self.path, 'wb') as image_file:
            spy = self._stream(image_file, FlagSpy, direct_io=False)
        self.assertEqual([False] * 4, spy.direct_flags)

    def test_nothing_changes_before_the_first_write(self):
        with open(self.path, 'wb') as image_file:
            before = fcntl.fcntl(image_file.fileno(), fcntl.F_GETFL)
            writer = file_writer.FileWriter(image_file)
            self.assertEqual(
                before, fcntl.fcntl(image_file.fileno(), fcntl.F_GETFL))
            writer.close()
            self.assertFalse(writer.direct)

    def test_file_system_refuses_the_flag(self):
        real_fcntl = fcntl.fcntl

        def refuse_direct(fd, command, *args):
            if command == fcntl.F_SETFL and args[0] & os.O_DIRECT:
                raise OSError(errno.EINVAL, 'Invalid argument')
            return real_fcntl(fd, command, *args)

        with mock.patch.object(file_writer.fcntl, 'fcntl', refuse_direct):
            with open(self.path, 'wb') as image_file:
                writer = self._stream(image_file)
        self.assertFalse(writer.direct)
        self.assertEqual(DATA, self._read())

    def test_write_refused_half_way(self):
        pretend = self.useFixture(PretendDirectIO())
        real_pwrite = os.pwrite
        calls = []

        def refuse_second(fd, data, offset):
            calls.append(offset)
            if len(calls) == 2:
                raise OSError(errno.EINVAL, 'Invalid argument')
            return real_pwrite(fd, data, offset)

        with open(self.path, 'wb') as image_file:
            with mock.patch.object(file_writer.os, 'pwrite', refuse_second):
                writer = file_writer.FileWriter(image_file)
                for start in range(0, len(DATA), CHUNK):
                    writer.update(_aligned(DATA[start:start + CHUNK]))
                writer.close()
            self.assertEqual(len(DATA), image_file.tell())
        self.assertEqual(DATA, self._read())
        # After the refusal nothing more is tried directly, and the flag
        # is off again.
        self.assertEqual([0, CHUNK], calls)
        self.assertEqual([True, False], pretend.flags)

    def test_unaligned_memory(self):
        # Whatever the file system makes of memory that is not aligned
        # (refused, or taken), every byte arrives.
        payload = bytes(1) + DATA[:2 * CHUNK]
        with open(self.path, 'wb') as image_file:
            writer = file_writer.FileWriter(image_file)
            writer.update(memoryview(payload)[1:CHUNK + 1])
            writer.update(memoryview(payload)[CHUNK + 1:])
            writer.close()
        self.assertEqual(DATA[:2 * CHUNK], self._read())

    def test_disk_error_is_raised_and_the_file_given_back(self):
        pretend = self.useFixture(PretendDirectIO())

        def no_space(fd, data, offset):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        with open(self.path, 'wb') as image_file:
            with mock.patch.object(file_writer.os, 'pwrite', no_space):
                exc = self.assertRaises(exception.ImageDownloadFailed,
                                        self._stream, image_file)
        self.assertIn('No space left on device', str(exc))
        self.assertEqual([True, False], pretend.flags)

    def test_restart_rewinds(self):
        self.useFixture(PretendDirectIO())
        with open(self.path, 'wb') as image_file:
            writer = file_writer.FileWriter(image_file)
            writer.update(_aligned(b'x' * CHUNK * 2))
            writer.reset()
            writer.update(_aligned(DATA[:CHUNK]))
            writer.close()
            self.assertEqual(CHUNK, image_file.tell())
        self.assertEqual(DATA[:CHUNK], self._read())
        self.assertEqual(CHUNK, os.path.getsize(self.path))

    def test_aligned_start_after_unflushed_bytes(self):
        with open(self.path, 'wb') as image_file:
            image_file.write(b'h' * 4096)
            spy = self._stream(image_file, FlagSpy)
        self.assertEqual(b'h' * 4096 + DATA, self._read())
        self.assertEqual(base.supports_direct_io(self.directory),
                         spy.direct_flags[0])

    def test_unaligned_start(self):
        with open(self.path, 'wb') as image_file:
            image_file.write(b'header')
            spy = self._stream(image_file, FlagSpy)
        self.assertEqual(b'header' + DATA, self._read())
        self.assertEqual([False] * 4, spy.direct_flags)

    def test_append_mode(self):
        with open(self.path, 'wb') as image_file:
            image_file.write(b'x' * 4096)
        with open(self.path, 'ab') as image_file:
            spy = self._stream(image_file, FlagSpy)
        self.assertEqual(b'x' * 4096 + DATA, self._read())
        self.assertEqual([False] * 4, spy.direct_flags)

    def test_no_file_descriptor(self):
        body = io.BytesIO()
        writer = self._stream(body)
        self.assertFalse(writer.direct)
        self.assertEqual(DATA, body.getvalue())

    def test_wrapper_forwarding_the_file(self):
        # Glance's _NoLink hides the name and forwards everything else to
        # the file: its bytes may go to the disk directly.
        with open(self.path, 'wb') as image_file:
            writer = self._stream(glance._NoLink(image_file))
            self.assertEqual(len(DATA), image_file.tell())
        self.assertEqual(DATA, self._read())
        self.assertEqual(base.supports_direct_io(self.directory),
                         writer.direct)

    def test_named_temporary_file(self):
        # Its wrapper forwards the file's methods wrapped in functions.
        with tempfile.NamedTemporaryFile(dir=self.directory) as image_file:
            writer = self._stream(image_file)
            self.assertEqual(len(DATA), image_file.tell())
            image_file.seek(0)
            self.assertEqual(DATA, image_file.read())
        self.assertEqual(base.supports_direct_io(self.directory),
                         writer.direct)

    def test_file_object_that_encodes_what_it_is_given(self):
        # A GzipFile's fileno() is the compressed file's: the bytes must go
        # through its write(), never to the descriptor.
        with gzip.open(self.path, 'wb') as image_file:
            writer = self._stream(image_file)
        self.assertFalse(writer.direct)
        self.assertEqual(DATA, gzip.decompress(self._read()))

    def test_subclass_with_its_own_write(self):
        class Counting(io.BufferedWriter):
            written = 0

            def write(self, data):
                self.written += len(data)
                return super().write(data)

        with Counting(io.FileIO(self.path, 'wb')) as image_file:
            writer = self._stream(image_file)
            self.assertEqual(len(DATA), image_file.written)
        self.assertFalse(writer.direct)
        self.assertEqual(DATA, self._read())

    def test_pipe(self):
        read_end, write_end = os.pipe()
        self.addCleanup(os.close, read_end)
        with open(write_end, 'wb') as image_file:
            writer = file_writer.FileWriter(image_file)
            writer.update(_aligned(DATA[:4096]))
            self.assertFalse(writer.direct)
            writer.close()
        self.assertEqual(DATA[:4096], os.read(read_end, 8192))

    def test_partial_writes(self):
        class Trickle(io.RawIOBase):
            def __init__(self):
                self.out = bytearray()

            def writable(self):
                return True

            def write(self, data):
                self.out += bytes(data[:3])
                return min(3, len(data))

        sink = Trickle()
        writer = file_writer.FileWriter(sink)
        writer.update(memoryview(b'abcdefghij'))
        self.assertEqual(b'abcdefghij', bytes(sink.out))


class TestPipelineAndWriter(base.TestCase):
    """What the pipeline does for a writer: aligned buffers, close()."""

    def test_buffers_are_page_aligned(self):
        seen = []

        class Spy:
            def update(self, data):
                seen.append(isinstance(data.obj, mmap.mmap))

        pipeline.stream(io.BytesIO(DATA), [Spy()], HREF, chunk_size=CHUNK)
        self.assertEqual([True] * 4, seen)

    def test_close_after_success_and_failure(self):
        class Closing:
            def __init__(self, fail=False):
                self.fail = fail
                self.closed = 0

            def update(self, data):
                if self.fail:
                    raise OSError(errno.EIO, 'broken')

            def close(self):
                self.closed += 1

        fine = Closing()
        pipeline.stream(io.BytesIO(DATA), [fine], HREF, chunk_size=CHUNK)
        broken, after = Closing(fail=True), Closing()
        self.assertRaises(exception.ImageDownloadFailed, pipeline.stream,
                          io.BytesIO(DATA), [broken, after], HREF,
                          chunk_size=CHUNK)
        self.assertEqual([1, 1, 1],
                         [fine.closed, broken.closed, after.closed])

    def test_close_failing_fails_the_transfer(self):
        class CannotClose:
            def update(self, data):
                pass

            def close(self):
                raise OSError(errno.EBADF, os.strerror(errno.EBADF))

        exc = self.assertRaises(exception.ImageDownloadFailed,
                                pipeline.stream, io.BytesIO(DATA),
                                [CannotClose()], HREF)
        self.assertIn('Bad file descriptor', str(exc))
