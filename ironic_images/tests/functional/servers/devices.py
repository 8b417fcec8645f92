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
"""Real device nodes for the tests: loop devices, and a guard on nodes.

:class:`LoopDeviceFixture` attaches a loop device over a temp file filled
with 0xFF, so that a range the code under test should have written (or
zeroed) and did not shows; it is attached with ``losetup -f --show`` and
detached (by its name) at clean-up. It needs ``losetup`` and root, or
password-less ``sudo`` (the device is then handed to the test's user, as
a volume is to the service that writes it): without them the test is
skipped, or fails when ``CI`` is set.

Code that replaces a destination with a regular file (the bug these tests
are about) would, run as root, replace a node of the shared /dev: a
:class:`NodeGuard` puts the node back at clean-up (and fails the test),
so that a regression cannot break the machine for the other tests.
"""

import glob
import os
import shutil
import stat
import subprocess
import tempfile

import fixtures
import testtools

from ironic_images.tests.functional.servers import base

FILL = b'\xff'
_CHUNK = 1024 * 1024


def privileged():
    """How to run a command as root: ``[]`` as root, else ``sudo -n``.

    :returns: the command prefix, or None when neither works.
    """
    if os.geteuid() == 0:
        return []
    sudo = shutil.which('sudo')
    if sudo and subprocess.run([sudo, '-n', 'true'], capture_output=True,
                               stdin=subprocess.DEVNULL).returncode == 0:
        return [sudo, '-n']
    return None


def require_root():
    """Skip the test without root or password-less sudo (fail it in CI)."""
    if privileged() is not None:
        return
    message = 'loop devices need root or password-less sudo'
    if os.environ.get('CI'):
        raise RuntimeError('CI is set and ' + message)
    raise testtools.TestCase.skipException(message)


class NodeGuard(fixtures.Fixture):
    """Put a device node back at clean-up if a test replaced it.

    :param path: a device node, e.g. ``/dev/null``.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def _setUp(self):
        st = os.stat(self.path)
        self._kind = stat.S_IFMT(st.st_mode)
        self._mode = stat.S_IMODE(st.st_mode)
        self._rdev = st.st_rdev
        self._owner = (st.st_uid, st.st_gid)
        self.addCleanup(self.restore)

    def restore(self):
        """Remake the node if it changed; raise when it had to."""
        directory, name = os.path.split(self.path)
        leftovers = glob.glob(os.path.join(directory, '.%s.*' % name))
        for leftover in leftovers:
            os.unlink(leftover)
        try:
            st = os.lstat(self.path)
            intact = (stat.S_IFMT(st.st_mode) == self._kind
                      and st.st_rdev == self._rdev)
        except FileNotFoundError:
            intact = False
        if intact and not leftovers:
            return
        if not intact:
            as_root = privileged() or []
            kind = 'b' if self._kind == stat.S_IFBLK else 'c'
            for command in (
                    ['rm', '-f', self.path],
                    ['mknod', '-m', '%o' % self._mode, self.path, kind,
                     str(os.major(self._rdev)), str(os.minor(self._rdev))],
                    ['chown', '%d:%d' % self._owner, self.path]):
                subprocess.run(as_root + command, check=True,
                               capture_output=True)
        raise AssertionError('%s was replaced (or temp files were left '
                             'beside it: %s); it was put back'
                             % (self.path, leftovers))


class LoopDevice(object):
    """A loop device over a temp file of ``size`` bytes of 0xFF.

    :param size: the device's size in bytes (a multiple of 512).
    """

    def __init__(self, size):
        self.size = size
        self.path = None
        self._workdir = None

    def start(self):
        """Make the backing file and attach it; ``path`` is the device."""
        losetup = base.require_binary('losetup')
        self._workdir = tempfile.mkdtemp(prefix='ironic-images-loop-')
        backing = os.path.join(self._workdir, 'backing')
        with open(backing, 'wb') as f:
            for start in range(0, self.size, _CHUNK):
                f.write(FILL * min(_CHUNK, self.size - start))
        as_root = privileged() or []
        try:
            self.path = subprocess.run(
                as_root + [losetup, '-f', '--show', backing], check=True,
                capture_output=True, text=True).stdout.strip()
            if as_root:
                # Handed to this user, as a volume is to the service
                # that writes it.
                subprocess.run(as_root + ['chown', str(os.getuid()),
                                          self.path], check=True,
                               capture_output=True)
        except BaseException:
            shutil.rmtree(self._workdir, ignore_errors=True)
            raise

    def stop(self):
        """Detach the device and remove its backing file."""
        if self.path:
            subprocess.run((privileged() or [])
                           + [base.require_binary('losetup'), '-d',
                              self.path], check=False, capture_output=True)
            self.path = None
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def read(self, offset=0, length=None):
        """The device's bytes from ``offset`` (to its end by default)."""
        with open(self.path, 'rb') as f:
            f.seek(offset)
            return f.read(self.size - offset if length is None else length)

    def fill(self):
        """Write 0xFF over the whole device again."""
        with open(self.path, 'r+b') as f:
            for start in range(0, self.size, _CHUNK):
                f.write(FILL * min(_CHUNK, self.size - start))
            f.flush()
            os.fsync(f.fileno())


class LoopDeviceFixture(fixtures.Fixture):
    """A :class:`LoopDevice` for the duration of a test.

    Set up outside of another fixture's ``_setUp`` (a skip raised there
    becomes an error).

    :param size: the device's size in bytes.
    """

    def __init__(self, size):
        super().__init__()
        self.device = LoopDevice(size)

    def setUp(self):
        # Skip before fixtures.Fixture.setUp, which turns a skip into an
        # error.
        require_root()
        base.require_binary('losetup')
        super().setUp()

    def _setUp(self):
        self.addCleanup(self.device.stop)
        self.device.start()
        # Cleaned up first: the node is put back before it is detached.
        self.useFixture(NodeGuard(self.device.path))

    @property
    def path(self):
        return self.device.path
