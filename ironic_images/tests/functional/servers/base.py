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
"""Helpers shared by the test servers.

A server is a plain object with ``start()`` and ``stop()`` (and usable as a
context manager), so scripts can use it without a test.  Tests wrap it in a
:class:`ServerFixture`, which starts it on set-up and stops it on clean-up.
"""

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import fixtures
from oslo_concurrency import lockutils
import testtools

LOCALHOST = '127.0.0.1'

_RUNNING = set()  # started servers, stopped at exit if still running


def free_port():
    """Return a TCP port on 127.0.0.1 that is free right now.

    :returns: the port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def port_open(port, host=LOCALHOST):
    """Tell whether something accepts TCP connections on host:port.

    :returns: True if a connection succeeds.
    """
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_until_ready(check, timeout=10, interval=0.01):
    """Call ``check`` until it returns a true value.

    :param check: a callable; it may raise to abort the wait.
    :param timeout: seconds before giving up.
    :param interval: seconds between two calls.
    :returns: the first true value returned by ``check``.
    :raises TimeoutError: if ``check`` stays false for ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError('not ready after %ss: %r' % (timeout, check))
        time.sleep(interval)


def read_json_log(path):
    """The complete lines of a JSON-lines access log, parsed.

    :param path: the log file (missing: no lines).
    :returns: a list of dicts; a line still being written is left out.
    """
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.endswith('}')]


def wait_for_entries(read, count, timeout):
    """Call ``read()`` until it returns at least ``count`` entries.

    Servers log a request once its answer is sent, so a client may see
    the answer before the entry.

    :param read: returns the current list of entries.
    :param count: how many to wait for.
    :param timeout: seconds.
    :returns: the entries.
    :raises TimeoutError: if fewer than ``count`` appear in time.
    """
    deadline = time.monotonic() + timeout
    while True:
        entries = read()
        if len(entries) >= count:
            return entries
        if time.monotonic() > deadline:
            raise TimeoutError('%d log entries, expected %d: %s'
                               % (len(entries), count, entries))
        time.sleep(0.01)


def require_binary(name):
    """Return the path of a program, or skip the test if it is missing.

    When the ``CI`` environment variable is set, a missing program is an
    error instead of a skip: CI installs every server (see bindep.txt), and
    a skip there would hide a missing feature.

    Call it outside of a fixture's ``_setUp`` (a skip raised there becomes
    an error); :class:`ServerFixture` does so for its ``binaries``.

    :param name: the program name, looked up in PATH.
    :returns: the full path of the program.
    :raises testtools.TestCase.skipException: if missing, outside CI.
    :raises RuntimeError: if missing and ``CI`` is set.
    """
    path = shutil.which(name)
    if path:
        return path
    message = ('%s is not installed (install the packages listed in '
               'bindep.txt)' % name)
    if os.environ.get('CI'):
        raise RuntimeError('CI is set and ' + message)
    raise testtools.TestCase.skipException(message)


class ProcessServer(object):
    """Base of a server that runs as one child process.

    Subclasses set ``binaries``, and implement :meth:`command` (and usually
    :meth:`prepare` and :meth:`is_ready`).  The child runs in its own
    session; :meth:`stop` signals its process group, by its PID, and waits.
    Its stdout and stderr go to ``output.log`` in ``workdir``.

    :param workdir: a directory for the server's files; by default a new
        temporary directory, removed by :meth:`stop`.
    :param startup_timeout: seconds :meth:`start` waits for readiness.
    """

    #: Programs that must be installed (see :func:`require_binary`).
    binaries = ()
    #: Seconds :meth:`stop` waits after SIGTERM before SIGKILL.
    stop_timeout = 5

    def __init__(self, workdir=None, startup_timeout=10):
        for binary in self.binaries:
            require_binary(binary)
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix='ironic-images-')
        self.startup_timeout = startup_timeout
        self.output_path = os.path.join(self.workdir, 'output.log')
        self.process = None
        self.pid = None

    def command(self):
        """Return the argv of the server process."""
        raise NotImplementedError()

    def prepare(self):
        """Write configuration files etc. before the process starts."""

    def is_ready(self):
        """Tell whether the started process serves requests."""
        return True

    def output(self):
        """Return what the process wrote to stdout and stderr."""
        try:
            with open(self.output_path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def start(self):
        """Start the process and wait until it is ready.

        On failure, the process is stopped and ``workdir`` removed (the
        exception message has the output of the process).

        :returns: self.
        :raises RuntimeError: if the process exits during start-up.
        :raises TimeoutError: if it is not ready in ``startup_timeout``.
        """
        if self.process is not None:
            raise RuntimeError('%r is already started' % self)
        try:
            self.launch()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self):
        """Make one attempt to start the process; it is stopped on failure.

        Override it to retry (e.g. on another port).
        """
        os.makedirs(self.workdir, exist_ok=True)
        self.prepare()
        with open(self.output_path, 'ab') as out:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=self.workdir,
                start_new_session=True)
        self.pid = self.process.pid
        _RUNNING.add(self)
        try:
            wait_until_ready(self._check_ready, self.startup_timeout)
        except BaseException:
            self.stop(remove_workdir=False)
            raise

    def _check_ready(self):
        if self.process.poll() is not None:
            raise RuntimeError('%s exited with status %s during start-up; '
                               'output:\n%s' % (self.command()[0],
                                                self.process.returncode,
                                                self.output()))
        return self.is_ready()

    def _signal(self, signum):
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, remove_workdir=True):
        """Stop the process (SIGTERM, then SIGKILL) and reap it.

        Safe to call more than once.

        :param remove_workdir: remove ``workdir`` if it was created here.
        """
        if self.process is not None:
            _RUNNING.discard(self)
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(self.stop_timeout)
            # Kill any child left behind in the process group.
            self._signal(signal.SIGKILL)
            self.process = None
        if remove_workdir and self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


@atexit.register
def _stop_leftovers():
    for server in list(_RUNNING):
        server.stop()


# (server class, test class) -> the server its tests share.
_SHARED = {}


class ServerFixture(fixtures.Fixture):
    """Run a server for the duration of a test, or share one.

    Subclasses set ``server_class``; the constructor arguments are passed
    to it.  The server is in the ``server`` attribute, and its attributes
    (``url``, ``port``...) can be read on the fixture itself.

    :param share_with: a test class: its tests share one server, started
        by the first of them and stopped after the last (a class cleanup).
    """

    #: The class of the server, with start() and stop() methods.
    server_class = None

    def __init__(self, *args, share_with=None, **kwargs):
        super(ServerFixture, self).__init__()
        self._args = args
        self._kwargs = kwargs
        self._share_with = share_with
        self.server = None

    def setUp(self):
        # Skip before fixtures.Fixture.setUp, which turns a skip into an
        # error.
        for binary in getattr(self.server_class, 'binaries', ()):
            require_binary(binary)
        super(ServerFixture, self).setUp()

    def _setUp(self):
        if self._share_with is None:
            self.server = self.server_class(*self._args, **self._kwargs)
            self.addCleanup(self.server.stop)
            self.server.start()
            return
        key = (self.server_class, self._share_with)
        server = _SHARED.get(key)
        if server is None or server.process is None:
            server = self.server_class(*self._args, **self._kwargs)
            server.start()
            _SHARED[key] = server
            self._share_with.addClassCleanup(_stop_shared, key)
        self.server = server

    def __getattr__(self, name):
        server = self.__dict__.get('server')
        if server is None or name.startswith('_'):
            raise AttributeError(name)
        return getattr(server, name)


def _stop_shared(key):
    server = _SHARED.pop(key, None)
    if server is not None:
        server.stop()


class SetupScript:
    """A virtualenv a ``tools/setup-*`` script makes, checked once a process.

    The script runs under an external lock, so that parallel test workers
    do not build the venv twice at once; it returns at once when the venv
    is there, and builds it when it is missing or broken. A failure skips
    the test, or is an error when ``CI`` is set (as :func:`require_binary`).

    :param name: what the venv is for, in messages (``Glance``).
    :param script: the file name of the script in ``tools/``.
    :param venv_path: a callable returning the venv's path (it may follow
        the environment).
    """

    _REPO_ROOT = os.path.abspath(os.path.join(
        os.path.dirname(__file__), '..', '..', '..', '..'))
    # A fixed directory, so that every stestr worker takes the same lock;
    # read at import, before a test patches tempfile.tempdir.
    _LOCK_PATH = os.path.join(tempfile.gettempdir(), 'ironic-images-locks')

    def __init__(self, name, script, venv_path):
        self.name = name
        self.script = script
        self._venv_path = venv_path
        self._lock = threading.Lock()
        self._checked = None

    def ensure(self):
        """Make sure the venv exists and works; call it outside a fixture.

        :returns: the venv directory.
        :raises testtools.TestCase.skipException: if it cannot be set up,
            outside CI.
        :raises RuntimeError: if it cannot be set up and ``CI`` is set.
        """
        with self._lock:
            if self._checked == self._venv_path():
                return self._checked
            with lockutils.external_lock('ironic-images-%s-venv'
                                         % self.name.lower(),
                                         lock_path=self._LOCK_PATH):
                try:
                    result = subprocess.run(
                        ['bash', os.path.join(self._REPO_ROOT, 'tools',
                                              self.script)],
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, errors='replace',
                        timeout=1200)
                    status, output = result.returncode, result.stdout
                except (OSError, subprocess.TimeoutExpired) as error:
                    status, output = None, str(error)
            if status == 0:
                self._checked = self._venv_path()
                return self._checked
        message = ('the %s virtualenv could not be set up by tools/%s '
                   '(status %s):\n%s' % (self.name, self.script, status,
                                         output[-3000:]))
        if os.environ.get('CI'):
            raise RuntimeError('CI is set and ' + message)
        raise testtools.TestCase.skipException(message)
