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

"""Images into pipes, character devices and standard output.

A stream is written in order and never replaced: a FIFO stays a FIFO,
/dev/null stays the null device, and ``ironic-images ... -`` writes the
image to standard output (the command's own messages go to stderr). The
library is driven directly, and the command as a separate process.
"""

import os
import pty
import stat
import subprocess
import sys
import threading

import fixtures
from oslo_utils import units

from ironic_images import api
from ironic_images import exception
from ironic_images import image_cache
from ironic_images import image_utils
from ironic_images.tests import base
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import devices
from ironic_images.tests.functional.servers import nginx

SIZE = 8 * units.Mi


def read(path):
    with open(path, 'rb') as f:
        return f.read()


class Reader(threading.Thread):
    """Reads a FIFO to its end (or ``limit`` bytes, then closes it)."""

    def __init__(self, path, limit=None):
        super().__init__(daemon=True)
        self.path = path
        self.limit = limit
        self.data = bytearray()
        self.start()

    def run(self):
        with open(self.path, 'rb') as fifo:
            while self.limit is None or len(self.data) < self.limit:
                chunk = fifo.read(64 * 1024)
                if not chunk:
                    break
                self.data += chunk

    def result(self):
        self.join(30)
        return bytes(self.data)


class StreamTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        self.server = self.useFixture(nginx.NginxFixture(self.images_dir))
        self.work = self.useFixture(fixtures.TempDir()).path
        self.scratch = self.useFixture(fixtures.TempDir()).path
        self.config(tempdir=self.scratch)
        self.fifo = os.path.join(self.work, 'fifo')
        os.mkfifo(self.fifo)
        if os.geteuid() == 0:
            # A regression would replace the machine's /dev/null.
            self.useFixture(devices.NodeGuard('/dev/null'))

    def publish(self, kind, size=SIZE):
        path = images.make_image(kind, self.images_dir, size=size)
        return os.path.basename(path)

    def disk(self, size=SIZE):
        return read(images.make_raw(self.work, size))

    def assertStillAFifo(self):
        self.assertTrue(stat.S_ISFIFO(os.stat(self.fifo).st_mode))
        self.assertEqual(['fifo'], sorted(
            n for n in os.listdir(self.work) if not n.startswith('raw-')))
        self.assertEqual([], os.listdir(self.scratch))


class TestLibraryIntoStreams(StreamTestCase):

    def test_fetch_into_a_fifo(self):
        name = self.publish('raw')
        reader = Reader(self.fifo)
        fetched = image_utils.fetch(None, self.server.url_for(name),
                                    self.fifo)
        self.assertEqual(read(os.path.join(self.images_dir, name)),
                         reader.result())
        self.assertEqual(('raw', SIZE), (fetched.format, fetched.size))
        self.assertStillAFifo()

    def test_fetch_to_raw_of_a_qcow2_into_a_fifo(self):
        # Decoded into a temp file first (its clusters are not in the
        # disk's order), then written in order.
        reader = Reader(self.fifo)
        image_utils.fetch_to_raw(
            None, self.server.url_for(self.publish('qcow2')), self.fifo)
        self.assertEqual(self.disk(), reader.result())
        self.assertStillAFifo()

    def test_fetch_to_raw_through_qemu_img_into_a_fifo(self):
        self.config(permitted_formats=['raw', 'vhdx'], group='image_format')
        reader = Reader(self.fifo)
        image_utils.fetch_to_raw(
            None, self.server.url_for(self.publish('vhdx')), self.fifo)
        self.assertEqual(self.disk(), reader.result())
        self.assertStillAFifo()

    def test_fetch_into_dev_null(self):
        image_utils.fetch(None, self.server.url_for(self.publish('raw')),
                          '/dev/null')
        st = os.stat('/dev/null')
        self.assertTrue(stat.S_ISCHR(st.st_mode))
        self.assertEqual(0o666, stat.S_IMODE(st.st_mode))

    def test_nova_download_into_a_fifo(self):
        name = self.publish('qcow2')
        reader = Reader(self.fifo)
        api.API().download(None, self.server.url_for(name),
                           dest_path=self.fifo)
        self.assertEqual(read(os.path.join(self.images_dir, name)),
                         reader.result())
        self.assertStillAFifo()

    def test_cache_hand_out_into_a_fifo(self):
        cache = image_cache.ImageCache(
            master_dir=os.path.join(self.scratch, 'master'))
        href = self.server.url_for(self.publish('qcow2'))
        cache.fetch_image(href, os.path.join(self.work, 'first'))
        os.unlink(os.path.join(self.work, 'first'))
        reader = Reader(self.fifo)
        self.assertTrue(cache.fetch_image(href, self.fifo).hit)
        self.assertEqual(self.disk(), reader.result())

    def test_a_reader_that_goes_away_leaves_the_stream_undefined(self):
        name = self.publish('garbage', size=16 * units.Mi)
        reader = Reader(self.fifo, limit=units.Mi)
        error = self.assertRaises(exception.DestinationUndefined,
                                  image_utils.fetch, None,
                                  self.server.url_for(name), self.fifo)
        reader.result()
        self.assertIn('the contents of %s are undefined' % self.fifo,
                      str(error))
        self.assertStillAFifo()


class TestCommandIntoStreams(StreamTestCase):
    """``ironic-images`` in its own process."""

    def run_command(self, *args, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        return subprocess.run(
            [sys.executable, '-m', 'ironic_images.cmd.main'] + list(args),
            stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
            cwd=self.work, env=env, timeout=60)

    def test_fetch_to_stdout(self):
        name = self.publish('raw')
        done = self.run_command('fetch', self.server.url_for(name), '-')
        self.assertEqual(0, done.returncode, done.stderr)
        self.assertEqual(read(os.path.join(self.images_dir, name)),
                         done.stdout)
        self.assertIn(b'Wrote - (raw, ', done.stderr)
        self.assertStillAFifo()  # no file named "-" either

    def test_progress_goes_to_stderr_only(self):
        # stderr a terminal: the progress line is drawn there, and
        # standard output carries the image and nothing else.
        name = self.publish('raw')
        controller, terminal = pty.openpty()
        self.addCleanup(os.close, controller)
        try:
            done = self.run_command('fetch', self.server.url_for(name), '-',
                                    stderr=terminal)
        finally:
            os.close(terminal)
        self.assertEqual(0, done.returncode)
        self.assertEqual(read(os.path.join(self.images_dir, name)),
                         done.stdout)
        drawn = os.read(controller, 65536)
        self.assertIn(b'100%', drawn)
        self.assertIn(b'Wrote -', drawn)

    def test_fetch_raw_of_a_qcow2_to_stdout(self):
        done = self.run_command('fetch', '--raw', self.server.url_for(
            self.publish('qcow2')), '-')
        self.assertEqual(0, done.returncode, done.stderr)
        self.assertEqual(self.disk(), done.stdout)

    def test_download_to_stdout_redirected_to_a_file(self):
        name = self.publish('qcow2')
        out = os.path.join(self.scratch, 'out')
        with open(out, 'wb') as f:
            done = self.run_command('download', self.server.url_for(name),
                                    '-', stdout=f)
        self.assertEqual(0, done.returncode, done.stderr)
        self.assertEqual(read(os.path.join(self.images_dir, name)),
                         read(out))
        os.unlink(out)

    def test_convert_to_stdout(self):
        source = images.make_image('qcow2', self.work, size=SIZE)
        done = self.run_command('convert', '-O', 'raw', source, '-')
        self.assertEqual(0, done.returncode, done.stderr)
        self.assertEqual(self.disk(), done.stdout)
        os.unlink(source)

    def test_cache_fetch_to_stdout(self):
        cache_dir = self.useFixture(fixtures.TempDir()).path
        conf = os.path.join(cache_dir, 'cache.conf')
        with open(conf, 'w') as f:
            f.write('[image_cache]\nmaster_path = %s\n'
                    % os.path.join(cache_dir, 'master'))
        href = self.server.url_for(self.publish('qcow2'))
        for _run in range(2):  # a download, then a hit
            done = self.run_command('--config-file', conf, 'cache', 'fetch',
                                    '--raw', href, '-')
            self.assertEqual(0, done.returncode, done.stderr)
            self.assertEqual(self.disk(), done.stdout)
        self.assertIn(b'cache hit', done.stderr)

    def test_stdout_on_a_terminal_is_refused(self):
        controller, terminal = pty.openpty()
        self.addCleanup(os.close, controller)
        try:
            done = self.run_command('fetch', self.server.url_for(
                self.publish('raw')), '-', stdout=terminal)
        finally:
            os.close(terminal)
        self.assertEqual(2, done.returncode)
        self.assertIn(b'standard output is a terminal', done.stderr)

    def test_download_to_dev_null(self):
        done = self.run_command(
            'download', self.server.url_for(self.publish('raw')),
            '/dev/null')
        self.assertEqual(0, done.returncode, done.stderr)
        self.assertTrue(stat.S_ISCHR(os.stat('/dev/null').st_mode))

    def test_fetch_to_dev_null(self):
        done = self.run_command(
            'fetch', '--raw', self.server.url_for(self.publish('qcow2')),
            '/dev/null')
        self.assertEqual(0, done.returncode, done.stderr)
        self.assertTrue(stat.S_ISCHR(os.stat('/dev/null').st_mode))

    def test_fetch_into_a_fifo(self):
        reader = Reader(self.fifo)
        done = self.run_command(
            'fetch', '--raw', self.server.url_for(self.publish('qcow2')),
            self.fifo)
        self.assertEqual(0, done.returncode, done.stderr)
        self.assertEqual(self.disk(), reader.result())
        self.assertStillAFifo()

    def test_download_into_a_fifo(self):
        name = self.publish('raw')
        reader = Reader(self.fifo)
        done = self.run_command('download', self.server.url_for(name),
                                self.fifo)
        self.assertEqual(0, done.returncode, done.stderr)
        self.assertEqual(read(os.path.join(self.images_dir, name)),
                         reader.result())
        self.assertStillAFifo()
