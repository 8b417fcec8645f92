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

"""Tests of atomic file writes."""

import errno
import os
import signal
from unittest import mock

from ironic_images.common import fileutils
from ironic_images.tests import base


class Boom(Exception):
    pass


class AtomicWriteTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.dest = os.path.join(self.images_dir, 'dest.img')

    def _listing(self):
        return sorted(os.listdir(self.images_dir))

    def _read(self, path):
        with open(path, 'rb') as f:
            return f.read()

    def test_success_creates_dest(self):
        with fileutils.atomic_write(self.dest) as f:
            f.write(b'hello ')
            f.write(b'world')
        self.assertEqual(b'hello world', self._read(self.dest))
        self.assertEqual(['dest.img'], self._listing())

    def test_success_replaces_dest(self):
        with open(self.dest, 'wb') as f:
            f.write(b'old content that is longer')
        old_ino = os.stat(self.dest).st_ino
        with fileutils.atomic_write(self.dest) as f:
            f.write(b'new')
        self.assertEqual(b'new', self._read(self.dest))
        self.assertNotEqual(old_ino, os.stat(self.dest).st_ino)
        self.assertEqual(['dest.img'], self._listing())

    def test_dest_untouched_until_commit(self):
        with open(self.dest, 'wb') as f:
            f.write(b'old')
        with fileutils.atomic_write(self.dest) as f:
            f.write(b'new')
            f.flush()
            self.assertEqual(b'old', self._read(self.dest))
            self.assertNotEqual(self.dest, f.name)

    def test_part_beside_dest(self):
        with fileutils.atomic_write(self.dest) as f:
            part = f.name
            self.assertEqual(self.images_dir, os.path.dirname(part))
            self.assertTrue(os.path.basename(part).startswith('.dest.img.'))
            self.assertTrue(part.endswith(fileutils.PART_SUFFIX))
            self.assertTrue(os.path.isfile(part))
        self.assertFalse(os.path.exists(part))

    def test_relative_dest(self):
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.images_dir)
        with fileutils.atomic_write('rel.img') as f:
            self.assertEqual(self.images_dir, os.path.dirname(f.name))
            f.write(b'x')
        self.assertEqual(b'x',
                         self._read(os.path.join(self.images_dir, 'rel.img')))

    def test_exception_leaves_existing_dest_intact(self):
        with open(self.dest, 'wb') as f:
            f.write(b'precious')
        old_ino = os.stat(self.dest).st_ino

        def write():
            with fileutils.atomic_write(self.dest) as f:
                f.write(b'half')
                raise Boom()

        self.assertRaises(Boom, write)
        self.assertEqual(b'precious', self._read(self.dest))
        self.assertEqual(old_ino, os.stat(self.dest).st_ino)
        self.assertEqual(['dest.img'], self._listing())

    def test_exception_creates_nothing(self):
        def write():
            with fileutils.atomic_write(self.dest) as f:
                f.write(b'half')
                raise Boom()

        self.assertRaises(Boom, write)
        self.assertEqual([], self._listing())

    def test_keyboard_interrupt_cleans_up(self):
        def write():
            with fileutils.atomic_write(self.dest) as f:
                f.write(b'half')
                raise KeyboardInterrupt()

        self.assertRaises(KeyboardInterrupt, write)
        self.assertEqual([], self._listing())

    def test_writer_replaces_part_path(self):
        # The file:// driver closes the file and puts a hardlink at the
        # part path: whatever is there is committed as it is.
        source = os.path.join(self.images_dir, 'source.img')
        with open(source, 'wb') as f:
            f.write(b'linked')
        with fileutils.atomic_write(self.dest) as f:
            part = f.name
            f.close()
            tmp = part + '.tmp'
            os.link(source, tmp)
            os.replace(tmp, part)
        self.assertEqual(os.stat(source).st_ino, os.stat(self.dest).st_ino)
        self.assertEqual(b'linked', self._read(self.dest))
        self.assertEqual(['dest.img', 'source.img'], self._listing())

    def test_missing_directory(self):
        def write():
            with fileutils.atomic_write(
                    os.path.join(self.images_dir, 'no', 'x')) as f:
                f.write(b'x')

        self.assertRaises(FileNotFoundError, write)
        self.assertEqual([], self._listing())


class PartPathTestCase(base.TestCase):

    def test_unique_and_created(self):
        dest = os.path.join(self.images_dir, 'x.img')
        first = fileutils.part_path(dest)
        second = fileutils.part_path(dest)
        self.assertNotEqual(first, second)
        for part in (first, second):
            self.assertEqual(0, os.stat(part).st_size)
            self.assertEqual(self.images_dir, os.path.dirname(part))
            self.assertTrue(os.path.basename(part).startswith('.x.img.'))
            self.assertTrue(part.endswith('.part'))
        self.assertFalse(os.path.exists(dest))

    def test_commit(self):
        dest = os.path.join(self.images_dir, 'x.img')
        part = fileutils.part_path(dest)
        with open(part, 'wb') as f:
            f.write(b'data')
        fileutils.commit(part, dest)
        self.assertFalse(os.path.exists(part))
        with open(dest, 'rb') as f:
            self.assertEqual(b'data', f.read())

    def test_remove_quietly(self):
        path = os.path.join(self.images_dir, 'gone')
        fileutils.remove_quietly(path)
        open(path, 'wb').close()
        fileutils.remove_quietly(path)
        self.assertFalse(os.path.exists(path))


def _open_fds():
    return set(os.listdir('/proc/self/fd'))


class HeldPartsTestCase(base.TestCase):
    """The lock a temp file is held by, and what the cleaner leaves."""

    def setUp(self):
        super().setUp()
        self.dest = os.path.join(self.images_dir, 'x.img')

    def part(self):
        part = fileutils.part_path(self.dest)
        self.addCleanup(fileutils.remove_quietly, part)
        return part

    def test_lock_failure_leaks_nothing(self):
        # flock fails on some file systems (ENOLCK on NFS without lockd):
        # neither the descriptor nor the new file may stay behind.
        before = _open_fds()
        with mock.patch.object(fileutils.fcntl, 'flock', autospec=True,
                               side_effect=OSError(errno.ENOLCK, 'no locks')):
            self.assertRaises(OSError, fileutils.part_path, self.dest)
        self.assertEqual(before, _open_fds())
        self.assertEqual([], os.listdir(self.images_dir))
        self.assertEqual({}, fileutils._HELD)

    def test_replaced_file_of_a_live_writer_kept(self):
        # A writer of this process that put another file at its temp name
        # (unlink, then copy: the new inode is not the locked one) is
        # still alive: the next temp file of the same dest must not take
        # its file away.
        part = self.part()
        os.unlink(part)
        with open(part, 'wb') as f:
            f.write(b'copy in progress')
        self.part()
        self.assertTrue(os.path.exists(part))
        self.assertEqual([], fileutils.remove_stale_parts(self.dest))

    def test_commit_releases_the_lock(self):
        before = _open_fds()
        part = fileutils.part_path(self.dest)
        fileutils.commit(part, self.dest)
        self.assertEqual(before, _open_fds())
        self.assertNotIn(part, fileutils._HELD)

    def test_commit_not_durable(self):
        before = _open_fds()
        part = fileutils.part_path(self.dest)
        with mock.patch.object(fileutils, 'fsync_dir',
                               autospec=True) as fsync_dir:
            fileutils.commit(part, self.dest, durable=False)
        fsync_dir.assert_not_called()
        self.assertTrue(os.path.exists(self.dest))
        self.assertEqual(before, _open_fds())

    def test_forked_child_not_deadlocked(self):
        # A fork while another thread holds the registry's lock: the
        # child gets the lock locked, with no thread to release it.
        with fileutils._HELD_LOCK:
            pid = os.fork()
            if pid == 0:  # the child
                status = 1
                try:
                    signal.alarm(10)
                    fileutils.remove_quietly(fileutils.part_path(self.dest))
                    status = 0
                finally:
                    os._exit(status)
        _pid, status = os.waitpid(pid, 0)
        self.assertEqual(0, status)


class ModeAndSymlinkTestCase(base.TestCase):
    """A new file has the umask's mode; a symlink's target is written."""

    def setUp(self):
        super().setUp()
        self.dest = os.path.join(self.images_dir, 'dest.img')

    def with_umask(self, mask):
        previous = os.umask(mask)
        self.addCleanup(os.umask, previous)

    def test_umask_is_read_without_changing_it(self):
        self.with_umask(0o027)
        self.assertEqual(0o027, fileutils.umask())
        self.assertEqual(0o640, fileutils.file_mode())
        self.assertEqual(0o027, os.umask(0o027))

    def test_part_path_has_the_mode_of_a_new_file(self):
        for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
            self.with_umask(mask)
            part = fileutils.part_path(self.dest)
            self.addCleanup(fileutils.remove_quietly, part)
            self.assertEqual(mode, os.stat(part).st_mode & 0o777)

    def test_atomic_write_keeps_the_mode(self):
        self.with_umask(0o022)
        with fileutils.atomic_write(self.dest) as f:
            f.write(b'data')
        self.assertEqual(0o644, os.stat(self.dest).st_mode & 0o777)

    def test_commit_through_a_symlink_replaces_its_target(self):
        target = os.path.join(self.images_dir, 'target')
        with open(target, 'wb') as f:
            f.write(b'old')
        os.symlink('target', self.dest)
        with fileutils.atomic_write(self.dest) as f:
            f.write(b'new')
        self.assertTrue(os.path.islink(self.dest))
        with open(target, 'rb') as f:
            self.assertEqual(b'new', f.read())
        self.assertEqual(['dest.img', 'target'],
                         sorted(os.listdir(self.images_dir)))
