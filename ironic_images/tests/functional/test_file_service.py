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

"""The file:// image service against real files.

Every refusal is checked for its reason and for not opening the target:
``os.open`` and ``open`` are wrapped and their calls inspected.
"""

import builtins
import contextlib
import datetime
import hashlib
import io
import os
import socket
import threading
from unittest import mock

import fixtures

from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service import file as file_service
from ironic_images.tests import base

DATA = os.urandom(5 * 1024 * 1024 + 4097)
SHA256 = hashlib.sha256(DATA).hexdigest()
SHA512 = hashlib.sha512(DATA).hexdigest()
WRONG = hashlib.sha256(b'not the image').hexdigest()
SHM = '/dev/shm'

_real_os_open = os.open
_real_open = builtins.open


class OpenRecorder:
    """Wraps os.open and open; records every path they were given."""

    def __init__(self, test):
        self.paths = []
        self.test = test

    def _os_open(self, path, *args, **kwargs):
        self.paths.append(path)
        return _real_os_open(path, *args, **kwargs)

    def _open(self, file, *args, **kwargs):
        self.paths.append(file)
        return _real_open(file, *args, **kwargs)

    @contextlib.contextmanager
    def watch(self):
        with mock.patch.object(os, 'open', autospec=True,
                               side_effect=self._os_open), \
                mock.patch.object(builtins, 'open', autospec=True,
                                  side_effect=self._open):
            yield self

    def opened(self):
        """The resolved paths opened, file descriptors left out."""
        return {os.path.realpath(os.fsdecode(p)) for p in self.paths
                if isinstance(p, (str, bytes, os.PathLike))}


class FileServiceTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.service = file_service.FileImageService()
        self.image = self.make_file('disk.img', DATA)
        self.href = 'file://' + self.image
        self.outside = self.useFixture(fixtures.TempDir()).path
        self.secret = self.make_file('secret.img', b'top secret bytes',
                                     directory=self.outside)
        self.dest_dir = self.useFixture(fixtures.TempDir()).path

    def make_file(self, name, data, directory=None):
        path = os.path.join(directory or self.images_dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def read(self, path):
        with open(path, 'rb') as f:
            return f.read()


class RefusalTestCase(FileServiceTestCase):

    def assertRefused(self, href, reason, targets=()):
        """Each entry point refuses href with reason, opening no target."""
        targets = {os.path.realpath(t) for t in targets}
        calls = [
            ('validate_href', lambda: self.service.validate_href(href)),
            ('show', lambda: self.service.show(href)),
            ('download', lambda: self.service.download(href, io.BytesIO())),
            ('download+checksum', lambda: self.service.download(
                href, io.BytesIO(), checksum='sha256:' + SHA256)),
        ]
        dest = os.path.join(self.dest_dir, 'out.img')
        for name, call in calls + [('download to file', None)]:
            recorder = OpenRecorder(self)
            with recorder.watch():
                if call is None:
                    with _real_open(dest, 'wb') as out:
                        exc = self.assertRaises(
                            exception.ImageRefValidationFailed,
                            self.service.download, href, out)
                else:
                    exc = self.assertRaises(
                        exception.ImageRefValidationFailed, call)
            self.assertIn(reason, str(exc), '%s of %s' % (name, href))
            self.assertIn('Validation of image href', str(exc))
            self.assertEqual(set(), recorder.opened() & targets,
                             '%s of %s opened the target' % (name, href))
            self.assertIsNone(self.service.transfer_verified_checksum)
        self.assertEqual(0, os.stat(dest).st_size)
        return exc

    def test_etc_passwd(self):
        self.assertRefused('file:///etc/passwd',
                           '/etc/passwd is under /etc, which is never '
                           'allowed', ['/etc/passwd'])

    def test_etc_even_when_listed(self):
        self.config(allowed_paths=[self.images_dir, '/etc', '/'],
                    group='file')
        self.assertRefused('file:///etc/passwd', 'never allowed',
                           ['/etc/passwd'])

    def test_dev_zero(self):
        self.assertRefused('file:///dev/zero',
                           '/dev/zero is under /dev', ['/dev/zero'])

    def test_dev_when_listed(self):
        self.config(allowed_paths=['/dev'], group='file')
        self.assertRefused('file:///dev/null', 'under /dev', ['/dev/null'])

    def test_proc_self_environ(self):
        self.assertRefused('file:///proc/self/environ', 'is under /proc',
                           ['/proc/self/environ'])

    def test_other_blocked_trees(self):
        for path in ('/sys/kernel/notes', '/boot/vmlinuz',
                     '/run/systemd/x'):
            self.assertRefused('file://' + path, 'never allowed', [path])

    def test_symlink_to_outside_file(self):
        link = os.path.join(self.images_dir, 'link.img')
        os.symlink(self.secret, link)
        exc = self.assertRefused('file://' + link,
                                 'is not under any of [file]allowed_paths',
                                 [self.secret, link])
        # The reason names the resolved path, not the link.
        self.assertIn(self.secret, str(exc))

    def test_symlink_to_etc(self):
        link = os.path.join(self.images_dir, 'passwd.img')
        os.symlink('/etc/passwd', link)
        self.assertRefused('file://' + link, 'under /etc', ['/etc/passwd'])

    def test_relative_symlink_escaping(self):
        link = os.path.join(self.images_dir, 'rel.img')
        os.symlink(os.path.relpath(self.secret, self.images_dir), link)
        self.assertRefused('file://' + link, 'not under any of',
                           [self.secret])

    def test_symlinked_directory_to_outside(self):
        link = os.path.join(self.images_dir, 'sub')
        os.symlink(self.outside, link)
        self.assertRefused('file://%s/secret.img' % link,
                           'not under any of', [self.secret])

    def test_host(self):
        self.assertRefused('file://host%s' % self.image,
                           'may not name a host (host)', [self.image])
        self.assertRefused('file://localhost%s' % self.image,
                           'may not name a host', [self.image])

    def test_relative_path(self):
        self.assertRefused('file:relative/x.img', 'must be absolute')
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.images_dir)
        self.assertRefused('file:disk.img', 'must be absolute',
                           [self.image])

    def test_dot_dot_escaping(self):
        name = os.path.basename(self.outside)
        href = 'file://%s/../%s/secret.img' % (self.images_dir, name)
        exc = self.assertRefused(href, 'not under any of', [self.secret])
        self.assertIn(self.secret, str(exc))

    def test_dot_dot_to_etc(self):
        depth = self.images_dir.count('/')
        href = 'file://%s/%setc/passwd' % (self.images_dir, '../' * depth)
        self.assertRefused(href, 'under /etc', ['/etc/passwd'])

    def test_encoded_dot_dot(self):
        name = os.path.basename(self.outside)
        href = 'file://%s/%%2e%%2e/%s/secret.img' % (self.images_dir, name)
        self.assertRefused(href, 'not under any of', [self.secret])

    def test_sibling_with_common_prefix(self):
        # /x/images-evil is not inside /x/images.
        evil = self.images_dir + '-evil'
        os.mkdir(evil)
        self.addCleanup(os.rmdir, evil)
        path = self.make_file('x.img', b'evil', directory=evil)
        self.addCleanup(os.unlink, path)
        self.assertRefused('file://' + path, 'not under any of', [path])

    def test_outside_file(self):
        self.assertRefused('file://' + self.secret, 'not under any of',
                           [self.secret])

    def test_directory(self):
        subdir = os.path.join(self.images_dir, 'subdir')
        os.mkdir(subdir)
        self.assertRefused('file://' + subdir, 'is not a regular file',
                           [subdir])
        self.assertRefused('file://' + self.images_dir,
                           'is not a regular file', [self.images_dir])

    def test_fifo(self):
        fifo = os.path.join(self.images_dir, 'fifo.img')
        os.mkfifo(fifo)
        self.assertRefused('file://' + fifo, 'is not a regular file',
                           [fifo])

    def test_socket(self):
        path = os.path.join(self.images_dir, 'sock.img')
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.bind(path)
        self.assertRefused('file://' + path, 'is not a regular file',
                           [path])

    def test_symlink_to_fifo(self):
        fifo = os.path.join(self.images_dir, 'fifo')
        os.mkfifo(fifo)
        link = os.path.join(self.images_dir, 'fifo.img')
        os.symlink(fifo, link)
        self.assertRefused('file://' + link, 'is not a regular file',
                           [fifo])

    def test_missing(self):
        missing = os.path.join(self.images_dir, 'missing.img')
        self.assertRefused('file://' + missing, 'No such file or directory',
                           [missing])

    def test_dangling_symlink(self):
        link = os.path.join(self.images_dir, 'dangling.img')
        os.symlink(os.path.join(self.images_dir, 'nowhere'), link)
        self.assertRefused('file://' + link, 'No such file', [link])

    def test_empty_allowed_paths_disables_file(self):
        self.config(allowed_paths=[], group='file')
        self.assertRefused(self.href, '[file]allowed_paths is empty',
                           [self.image])

    def test_default_allowed_paths(self):
        self.cfg_fixture.conf.clear_override('allowed_paths', group='file')
        self.assertRefused(self.href, '/var/lib/ironic/images',
                           [self.image])

    def test_query_and_fragment(self):
        self.assertRefused(self.href + '?x=1', 'query or a fragment',
                           [self.image])
        self.assertRefused(self.href + '#frag', 'query or a fragment',
                           [self.image])

    def test_nul_byte(self):
        self.assertRefused(self.href + '%00.txt', 'NUL byte', [self.image])

    def test_not_file_scheme(self):
        self.assertRefused('http://h' + self.image, 'not a file:// href')

    def test_opened_path_checked_again(self):
        # A path that passed validation but is swapped for a symlink before
        # it is opened: O_NOFOLLOW refuses the link itself.
        link = os.path.join(self.images_dir, 'swapped.img')
        os.symlink(self.secret, link)
        with mock.patch.object(file_service.FileImageService,
                               'validate_href', autospec=True,
                               return_value=link):
            out = io.BytesIO()
            exc = self.assertRaises(exception.ImageRefValidationFailed,
                                    self.service.download,
                                    'file://' + link, out)
        self.assertIn('cannot open', str(exc))
        self.assertIn('Too many levels of symbolic links', str(exc))
        self.assertEqual(b'', out.getvalue())

    def test_opened_directory_swap_checked_again(self):
        # A directory on the path swapped for a symlink to the outside:
        # what was opened is checked again and refused.
        link = os.path.join(self.images_dir, 'dir')
        os.symlink(self.outside, link)
        path = os.path.join(link, 'secret.img')
        with mock.patch.object(file_service.FileImageService,
                               'validate_href', autospec=True,
                               return_value=path):
            out = io.BytesIO()
            exc = self.assertRaises(exception.ImageRefValidationFailed,
                                    self.service.download,
                                    'file://' + path, out)
        self.assertIn('not under any of', str(exc))
        self.assertEqual(b'', out.getvalue())


class ShowTestCase(FileServiceTestCase):

    def test_show(self):
        os.utime(self.image, (1600000000, 1700000000.25))
        props = self.service.show(self.href)
        self.assertEqual(len(DATA), props['size'])
        self.assertEqual(datetime.datetime(2023, 11, 14, 22, 13, 20, 250000),
                         props['updated_at'])
        self.assertIsNone(props['updated_at'].tzinfo)
        self.assertIs(True, props['no_cache'])
        self.assertEqual({'path': self.image}, props['properties'])

    def test_show_matches_mtime(self):
        st = os.stat(self.image)
        props = self.service.show(self.href)
        self.assertEqual(
            datetime.datetime.fromtimestamp(st.st_mtime,
                                            tz=datetime.timezone.utc),
            props['updated_at'].replace(tzinfo=datetime.timezone.utc))

    def test_show_through_symlink_inside(self):
        link = os.path.join(self.images_dir, 'current.img')
        os.symlink('disk.img', link)
        props = self.service.show('file://' + link)
        self.assertEqual(len(DATA), props['size'])
        self.assertEqual(self.image, props['properties']['path'])

    def test_show_does_not_read(self):
        recorder = OpenRecorder(self)
        with recorder.watch():
            self.service.show(self.href)
        self.assertEqual([], recorder.paths)

    def test_allowed_path_is_a_symlink(self):
        link = os.path.join(self.dest_dir, 'images')
        os.symlink(self.images_dir, link)
        self.config(allowed_paths=[link], group='file')
        self.assertEqual(len(DATA), self.service.show(self.href)['size'])
        self.assertEqual(len(DATA), self.service.show(
            'file://%s/disk.img' % link)['size'])

    def test_several_allowed_paths(self):
        self.config(allowed_paths=['/nonexistent', self.outside, ''],
                    group='file')
        self.assertEqual(len(b'top secret bytes'),
                         self.service.show('file://' + self.secret)['size'])
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.show, self.href)

    def test_validate_returns_resolved_path(self):
        os.mkdir(os.path.join(self.images_dir, 'sub'))
        self.assertEqual(self.image, self.service.validate_href(
            'file://%s/./sub/../disk.img' % self.images_dir))

    def test_through_get_image_service(self):
        service = image_service.get_image_service(self.href)
        self.assertEqual(len(DATA), service.show(self.href)['size'])
        self.assertRaises(exception.ImageRefValidationFailed,
                          service.show, 'file:///etc/passwd')


class DownloadTestCase(FileServiceTestCase):

    def test_hardlink_same_filesystem(self):
        dest = os.path.join(self.images_dir, 'dest.img')
        with open(dest, 'wb') as out:
            self.service.download(self.href, out)
            self.assertTrue(out.closed)
        self.assertEqual(os.stat(self.image).st_ino, os.stat(dest).st_ino)
        self.assertEqual(DATA, self.read(dest))
        self.assertIsNone(self.service.transfer_verified_checksum)

    def test_hardlink_with_checksum(self):
        dest = os.path.join(self.dest_dir, 'dest.img')
        self.assertEqual(os.stat(self.images_dir).st_dev,
                         os.stat(self.dest_dir).st_dev)
        with open(dest, 'wb') as out:
            self.service.download(self.href, out,
                                  checksum='sha256:' + SHA256)
        self.assertEqual(os.stat(self.image).st_ino, os.stat(dest).st_ino)
        self.assertEqual('sha256:' + SHA256,
                         self.service.transfer_verified_checksum)
        self.assertEqual(['dest.img'], os.listdir(self.dest_dir))

    def test_hardlink_bare_sha512(self):
        dest = os.path.join(self.dest_dir, 'dest.img')
        with open(dest, 'wb') as out:
            self.service.download(self.href, out, checksum=SHA512.upper())
        self.assertEqual('sha512:' + SHA512,
                         self.service.transfer_verified_checksum)
        self.assertEqual(os.stat(self.image).st_ino, os.stat(dest).st_ino)

    def test_checksum_algo(self):
        sha1 = hashlib.sha1(DATA).hexdigest()
        out = io.BytesIO()
        self.service.download(self.href, out, checksum=sha1,
                              checksum_algo='sha1')
        self.assertEqual('sha1:' + sha1,
                         self.service.transfer_verified_checksum)

    def test_atomic_write_hardlinks(self):
        dest = os.path.join(self.dest_dir, 'dest.img')
        with fileutils.atomic_write(dest) as out:
            self.service.download(self.href, out, checksum=SHA256)
        self.assertEqual(os.stat(self.image).st_ino, os.stat(dest).st_ino)
        self.assertEqual(['dest.img'], os.listdir(self.dest_dir))
        self.assertEqual('sha256:' + SHA256,
                         self.service.transfer_verified_checksum)

    def test_other_filesystem_copies(self):
        if not os.path.isdir(SHM):
            self.skipTest('no %s' % SHM)
        shm_dir = self.useFixture(fixtures.TempDir(rootdir=SHM)).path
        self.assertNotEqual(os.stat(self.image).st_dev,
                            os.stat(shm_dir).st_dev)
        for checksum in (None, 'sha256:' + SHA256):
            dest = os.path.join(shm_dir, 'dest.img')
            with fileutils.atomic_write(dest) as out:
                self.service.download(self.href, out, checksum=checksum)
            self.assertEqual(DATA, self.read(dest), checksum)
            self.assertNotEqual(os.stat(self.image).st_ino,
                                os.stat(dest).st_ino)
            self.assertEqual(checksum,
                             self.service.transfer_verified_checksum)
            self.assertEqual(['dest.img'], os.listdir(shm_dir))

    def test_other_filesystem_mismatch_leaves_nothing(self):
        if not os.path.isdir(SHM):
            self.skipTest('no %s' % SHM)
        shm_dir = self.useFixture(fixtures.TempDir(rootdir=SHM)).path
        dest = os.path.join(shm_dir, 'dest.img')

        def download():
            with fileutils.atomic_write(dest) as out:
                self.service.download(self.href, out, checksum=WRONG)

        exc = self.assertRaises(exception.ImageChecksumError, download)
        self.assertIn(WRONG, str(exc))
        self.assertIn(SHA256, str(exc))
        self.assertEqual([], os.listdir(shm_dir))

    def test_bytesio(self):
        out = io.BytesIO()
        self.service.download(self.href, out)
        self.assertEqual(DATA, out.getvalue())
        self.assertIsNone(self.service.transfer_verified_checksum)

    def test_bytesio_with_checksum(self):
        out = io.BytesIO()
        self.service.download(self.href, out, checksum='sha256:' + SHA256)
        self.assertEqual(DATA, out.getvalue())
        self.assertEqual('sha256:' + SHA256,
                         self.service.transfer_verified_checksum)

    def test_bytesio_mismatch(self):
        out = io.BytesIO()
        exc = self.assertRaises(exception.ImageChecksumError,
                                self.service.download, self.href, out,
                                checksum=WRONG)
        self.assertIn(SHA256, str(exc))
        self.assertIsNone(self.service.transfer_verified_checksum)

    def test_mismatch_same_filesystem_leaves_nothing(self):
        dest = os.path.join(self.dest_dir, 'dest.img')

        def download():
            with fileutils.atomic_write(dest) as out:
                self.service.download(self.href, out, checksum=WRONG)

        exc = self.assertRaises(exception.ImageChecksumError, download)
        self.assertIsInstance(exc, exception.ImageDownloadFailed)
        self.assertEqual([], os.listdir(self.dest_dir))
        self.assertIsNone(self.service.transfer_verified_checksum)
        # The source is untouched.
        self.assertEqual(DATA, self.read(self.image))

    def test_mismatch_keeps_existing_dest(self):
        dest = os.path.join(self.dest_dir, 'dest.img')
        with open(dest, 'wb') as f:
            f.write(b'previous')

        def download():
            with fileutils.atomic_write(dest) as out:
                self.service.download(self.href, out, checksum=WRONG)

        self.assertRaises(exception.ImageChecksumError, download)
        self.assertEqual(b'previous', self.read(dest))
        self.assertEqual(['dest.img'], os.listdir(self.dest_dir))

    def test_verified_checksum_reset_by_next_download(self):
        self.service.download(self.href, io.BytesIO(), checksum=SHA256)
        self.assertIsNotNone(self.service.transfer_verified_checksum)
        self.service.download(self.href, io.BytesIO())
        self.assertIsNone(self.service.transfer_verified_checksum)

    def test_recorder_sees_the_open(self):
        # The wrappers the refusal tests rely on do see a real open.
        recorder = OpenRecorder(self)
        with recorder.watch():
            self.service.download(self.href, io.BytesIO())
        self.assertIn(self.image, recorder.opened())

    def test_progress_reported(self):
        # Every way of putting the image in place tells progress the end.
        size = len(DATA)
        ways = [
            ('hardlink', lambda: _real_open(
                os.path.join(self.dest_dir, 'a.img'), 'wb'), None),
            ('hardlink+checksum', lambda: _real_open(
                os.path.join(self.dest_dir, 'b.img'), 'wb'), SHA256),
            ('copy', io.BytesIO, None),
            ('copy+checksum', io.BytesIO, SHA256),
        ]
        for name, make_out, checksum in ways:
            calls = []
            out = make_out()
            try:
                self.service.download(
                    self.href, out, checksum=checksum,
                    progress=lambda done, total: calls.append((done, total)))
            finally:
                out.close()
            self.assertTrue(calls, name)
            self.assertEqual((size, size), calls[-1], name)
            dones = [done for done, _total in calls]
            self.assertEqual(sorted(dones), dones, name)

    def test_progress_not_called_on_refusal(self):
        calls = []
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.download, 'file:///etc/passwd',
                          io.BytesIO(), progress=lambda *a: calls.append(a))
        self.assertEqual([], calls)

    def test_invalid_checksum_before_reading(self):
        recorder = OpenRecorder(self)
        with recorder.watch():
            self.assertRaises(exception.InvalidChecksum,
                              self.service.download, self.href,
                              io.BytesIO(), checksum='sha256:abc')
        self.assertNotIn(self.image, recorder.opened())

    def test_empty_image(self):
        empty = self.make_file('empty.img', b'')
        href = 'file://' + empty
        self.assertEqual(0, self.service.show(href)['size'])
        out = io.BytesIO()
        self.service.download(href, out,
                              checksum=hashlib.sha256(b'').hexdigest())
        self.assertEqual(b'', out.getvalue())
        dest = os.path.join(self.dest_dir, 'empty.img')
        with fileutils.atomic_write(dest) as f:
            self.service.download(href, f)
        self.assertEqual(b'', self.read(dest))

    def test_to_pipe(self):
        # No copy_file_range into a pipe: the pipeline is used instead.
        small = os.urandom(200 * 1024 + 3)
        href = 'file://' + self.make_file('small.img', small)
        read_fd, write_fd = os.pipe()
        received = []

        def reader():
            with _real_open(read_fd, 'rb') as pipe_in:
                received.append(pipe_in.read())

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            with _real_open(write_fd, 'wb') as pipe_out:
                self.service.download(href, pipe_out)
        finally:
            thread.join(10)
        self.assertEqual([small], received)

    def test_append_after_header(self):
        # The copy starts where the file object stands.
        dest = os.path.join(SHM if os.path.isdir(SHM) else self.dest_dir,
                            'ironic-images-test-%d' % os.getpid())
        self.addCleanup(fileutils.remove_quietly, dest)
        with open(dest, 'wb') as out:
            out.write(b'HEADER')
            self.service.download(self.href, out)
        self.assertEqual(b'HEADER' + DATA, self.read(dest))

    def test_source_unchanged(self):
        st = os.stat(self.image)
        self.service.download(self.href, io.BytesIO(), checksum=SHA256)
        self.assertEqual(DATA, self.read(self.image))
        self.assertEqual(st.st_mtime, os.stat(self.image).st_mtime)
