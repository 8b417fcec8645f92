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

"""What every reliability test shares: seeds, hypothesis settings, bounds.

Random choices come from :func:`seeded_random`: the seed is taken from
``IRONIC_IMAGES_SEED`` when set, else :data:`CI_SEED` when ``CI`` is set,
else drawn, and always printed (and
attached to the test's details), so that a failing run can be replayed
with ``IRONIC_IMAGES_SEED=<seed> tox -e reliability -- <test id>``.

Hypothesis runs derandomized with no example database (the same examples
on every run, in CI and locally) unless ``IRONIC_IMAGES_HYPOTHESIS=explore``
asks for fresh random examples; hangs are caught by :func:`bounded`, not by
hypothesis deadlines, which flake on a loaded machine.
"""

import contextlib
import ipaddress
import os
import random
import signal
import socket
import sys
import time

import fixtures
import hypothesis
from oslo_utils import units
import testtools.content

from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images.tests import base
from ironic_images.transfer import http_client

SEED_VARIABLE = 'IRONIC_IMAGES_SEED'
#: The seed used when ``CI`` is set and no seed is given.
CI_SEED = '20261122'
PROFILE_VARIABLE = 'IRONIC_IMAGES_HYPOTHESIS'

hypothesis.settings.register_profile(
    'ci', derandomize=True, database=None, deadline=None,
    max_examples=200, print_blob=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow,
                           hypothesis.HealthCheck.data_too_large])
hypothesis.settings.register_profile(
    'explore', parent=hypothesis.settings.get_profile('ci'),
    derandomize=False, max_examples=2000)
hypothesis.settings.load_profile(os.environ.get(PROFILE_VARIABLE, 'ci'))

# Seconds one fuzzed input may take before it counts as a hang: far above
# what any input needs (milliseconds), so a loaded machine cannot flake it.
HANG_SECONDS = 10


class Hang(BaseException):
    """An input took longer than :data:`HANG_SECONDS`.

    A BaseException, so that no ``except Exception`` turns it into a
    result.
    """


@contextlib.contextmanager
def bounded(seconds=HANG_SECONDS, what='the call'):
    """Fail with :class:`Hang` if the block runs longer than ``seconds``.

    Uses SIGALRM, so only in the main thread (where stestr runs tests).
    The test's own timeout (``fixtures.Timeout``) uses the same timer: it
    is re-armed afterwards with what was left of it, and fires first when
    it is due before ``seconds``.
    """
    def _alarm(_signum, _frame):
        raise Hang('%s took more than %ss' % (what, seconds))

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _alarm)
    outer = signal.setitimer(signal.ITIMER_REAL, seconds)[0]
    if outer and outer < seconds:
        signal.signal(signal.SIGALRM, previous)
        signal.setitimer(signal.ITIMER_REAL, outer)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        left = outer - (time.monotonic() - started)
        # When it was due within the block, it has fired there already.
        if outer and left > 0:
            signal.setitimer(signal.ITIMER_REAL, left)


def seeded_random(test):
    """A :class:`random.Random` whose seed is printed for replay.

    :param test: the running test case (the seed joins its details).
    :returns: ``(rng, seed)``.
    """
    given = os.environ.get(SEED_VARIABLE)
    if not given and os.environ.get('CI'):
        # CI runs the same faults every time: a failure there is a change's
        # doing, not the draw's. Local runs draw new seeds to explore.
        given = CI_SEED
    seed = int(given) if given else random.SystemRandom().randrange(2 ** 32)
    line = 'seed %d (replay: %s=%d tox -e reliability -- %s)' % (
        seed, SEED_VARIABLE, seed, test.id())
    sys.stderr.write(line + '\n')
    test.addDetail('seed', testtools.content.text_content(line))
    return random.Random(seed), seed


class LoopbackOnly(fixtures.Fixture):
    """Refuse to resolve any host but loopback addresses and localhost.

    Fuzzed hrefs, realms and redirects name arbitrary hosts: resolving
    them fails here (as an unknown host does) before any packet leaves.
    """

    def _setUp(self):
        real = socket.getaddrinfo

        def getaddrinfo(host, *args, **kwargs):
            if not _is_loopback(host):
                raise socket.gaierror(socket.EAI_NONAME,
                                      'not a loopback host (test guard)')
            return real(host, *args, **kwargs)

        self.useFixture(fixtures.MonkeyPatch('socket.getaddrinfo',
                                             getaddrinfo))


def _is_loopback(host):
    if isinstance(host, bytes):
        host = host.decode('ascii', 'replace')
    if host in (None, 'localhost'):
        return True
    try:
        return ipaddress.ip_address(str(host).strip('[]')).is_loopback
    except ValueError:
        return False


def text(value):
    """A testtools detail holding ``value``."""
    return testtools.content.text_content(value)


def say(line):
    """Print a line of the suite's findings (stestr shows stderr)."""
    sys.stderr.write(line + '\n')


def is_ours(error):
    """Whether an exception is one the library may raise."""
    return isinstance(error, exception.IronicImagesException)


class ReliabilityTestCase(base.TestCase):
    """Temp dirs, fast backoff, a one-second timeout, small chunks.

    ``self.dest_dir`` is where downloads go, through
    :func:`ironic_images.common.fileutils.atomic_write`, as a real caller does.
    """

    TIMEOUT = 240

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(self.TIMEOUT, gentle=True))
        self.useFixture(LoopbackOnly())
        self.useFixture(fixtures.MockPatchObject(http_client, 'BACKOFF_BASE',
                                                 0.01))
        self.useFixture(fixtures.MockPatchObject(http_client,
                                                 'MAX_RETRY_AFTER', 1.0))
        self.config(webserver_connection_timeout=1)
        self.config(chunk_size=64 * units.Ki, retries=3, group='download')
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.dest_dir = os.path.join(self.tmp, 'dest')
        os.mkdir(self.dest_dir)

    def assertNothingAt(self, dest, message=''):
        """Neither ``dest`` nor any temp file of it is left."""
        self.assertFalse(os.path.exists(dest), message)
        self.assertEqual([], self.leftovers(), message)

    def leftovers(self):
        """The temp files left in ``dest_dir``."""
        return sorted(name for name in os.listdir(self.dest_dir)
                      if name.endswith(fileutils.PART_SUFFIX))
