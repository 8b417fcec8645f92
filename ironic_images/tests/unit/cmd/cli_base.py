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

"""What the tests of the command share: run it, read what it printed."""

import io
import os
from unittest import mock

import fixtures

from ironic_images.cmd import main
from ironic_images.tests import base


class CommandTestCase(base.TestCase):
    """The command run in this process, its output captured.

    ``self.store`` holds ``disk.img``, ``self.href`` names it; the config
    file ``self.conf_file`` allows ``self.store`` (the test's own
    ``[file]allowed_paths`` override is dropped, so the file is what
    counts); ``self.out_dir`` is where destinations go.
    """

    #: The bytes of self.image.
    DATA = b'ironic-images cli test' * 200

    def setUp(self):
        super().setUp()
        self.cfg_fixture.conf.clear_override('allowed_paths', group='file')
        self.store = self.useFixture(fixtures.TempDir()).path
        self.out_dir = self.useFixture(fixtures.TempDir()).path
        self.image = os.path.join(self.store, 'disk.img')
        with open(self.image, 'wb') as f:
            f.write(self.DATA)
        self.href = 'file://' + self.image
        self.conf_file = os.path.join(self.out_dir, 'ironic-images.conf')
        self.write_config('[file]\nallowed_paths = %s\n' % self.store)
        self.dest = os.path.join(self.out_dir, 'dest.img')
        # No credentials of the machine running the tests.
        self.home = self.useFixture(fixtures.TempDir()).path
        for name in ('REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR',
                     'XDG_CONFIG_HOME', 'DOCKER_CONFIG', 'OS_CLOUD',
                     'OS_CLIENT_CONFIG_FILE', 'OS_CLIENT_SECURE_FILE'):
            self.useFixture(fixtures.EnvironmentVariable(name))
        self.useFixture(fixtures.EnvironmentVariable('HOME', self.home))

    def write_config(self, text):
        with open(self.conf_file, 'w') as f:
            f.write(text)

    def run_main(self, *args, config=True, stderr=None):
        """Run main() with captured output: (exit code, stdout, stderr)."""
        stdout, stderr = io.StringIO(), stderr or io.StringIO()
        argv = list(args) + (['--config-file', self.conf_file] if config
                             else [])
        with mock.patch('sys.stdout', stdout), \
                mock.patch('sys.stderr', stderr):
            code = main.main(argv)
        return code, stdout.getvalue(), stderr.getvalue()

    def assertOneLineError(self, stderr, *fragments):
        self.assertNotIn('Traceback', stderr)
        lines = stderr.splitlines()
        self.assertEqual(1, len(lines), stderr)
        self.assertTrue(lines[0].startswith('ironic-images: '), lines[0])
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def out_dir_listing(self):
        return sorted(name for name in os.listdir(self.out_dir)
                      if name != 'ironic-images.conf')

    def read(self, path):
        with open(path, 'rb') as f:
            return f.read()


class Tty(io.StringIO):
    """A captured stream that says it is a terminal."""

    def isatty(self):
        return True
