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

"""The stream decoder against qemu-img, byte for byte, in bounded memory.

:meth:`Qcow2DifferentialTestCase.check` streams a qcow2 file through
:class:`~ironic_images.sink.image_sink.ImageSink` (``to_raw=True``) in
chunks of mixed sizes, under tracemalloc, and converts the same file with
``qemu-img convert -f qcow2 -O raw``. The sink must raise one of
:mod:`ironic_images.exception`'s classes, or leave the image to qemu-img
(``converted`` None), or write exactly qemu-img's raw disk whenever
qemu-img accepts the file. A refusal of a file qemu-img accepts is
counted apart: it costs a user the image, not its integrity. The sink
never raises another exception, hangs, leaves a spill file or an
inflating thread behind, or allocates more than the decoder's bound
(``memory_bound`` of the unit tests' ``test_qcow2_stream_hostile``).
qemu-img only sees what the safety gate passes, with ``--force-share``,
under an address-space and CPU cap and a timeout.
"""

import collections
import filecmp
import os
import resource
import subprocess
import threading
import tracemalloc

import hypothesis
from hypothesis import strategies
from oslo_utils import units

from ironic_images import exception
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.sink import image_sink
from ironic_images.sink import qcow2_stream
from ironic_images.tests.functional import qcow2_variants as streams
from ironic_images.tests.functional.servers import base as servers_base
from ironic_images.tests.reliability import base
from ironic_images.tests.unit.sink import test_qcow2_stream_hostile as hostile

HREF = 'http://127.0.0.1:9/fuzzed.qcow2'
#: Raw disks larger than this are compared by qemu-img compare, which
#: skips holes, rather than read.
READ_COMPARE_MAX = 64 * units.Mi
#: What the sink and the test's feeding loop allocate beyond the decoder
#: and the sink's copies of its first write (see :func:`memory_bound`).
SINK_OVERHEAD = 256 * units.Ki
QEMU_TIMEOUT = 30
QEMU_ADDRESS_SPACE = units.Gi
EXAMPLES_VARIABLE = 'IRONIC_IMAGES_QCOW2_EXAMPLES'
#: What :meth:`Qcow2DifferentialTestCase.check` returns: the sink's
#: verdict, and qemu-img's when it matters.
OUTCOMES = ('same', 'refused, qemu-img too', 'refused, qemu-img accepts',
            'fell back', 'qemu-img refused')


def memory_bound(data, chunks):
    """The most a sink may allocate streaming qcow2 file ``data``.

    The decoder's bound, and what the sink holds before it: it keeps its
    first write twice (to detect compression, then to read the qcow2
    header).
    """
    sink = 2 * max(chunks) + SINK_OVERHEAD
    header, _why = qcow2_stream.streamable_header(
        data[:qcow2_stream.HEADER_BYTES])
    if header is None:
        # Written as it comes: a chunk at a time.
        return hostile.memory_bound(64 * units.Ki, 0) + sink
    # At most one allocated L2 entry a guest cluster.
    entries = -(-header.virtual_size // header.cluster_size)
    return hostile.memory_bound(header.cluster_size, entries) + sink


def _limit_qemu():
    resource.setrlimit(resource.RLIMIT_AS, (QEMU_ADDRESS_SPACE,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (QEMU_TIMEOUT,) * 2)


class Qcow2DifferentialTestCase(base.ReliabilityTestCase):

    def setUp(self):
        super().setUp()
        servers_base.require_binary('qemu-img')
        self.work = os.path.join(self.tmp, 'work')
        os.mkdir(self.work)
        #: The largest share of its bound a stream used, for the tally.
        self.most_of_bound = 0.0

    # --- the two sides -----------------------------------------------------

    def stream(self, data, chunks):
        """Ours: the sink's result and output path, or the exception."""
        out = os.path.join(self.work, 'ours.raw')
        tracemalloc.start()
        try:
            with base.bounded(what='streaming a fuzzed qcow2'):
                with open(out, 'wb') as f:
                    # Closed as fetch closes it, whatever happened.
                    with image_sink.ImageSink(f, HREF, to_raw=True,
                                              spill_dir=self.work) as sink:
                        result = self.feed(sink, data, chunks)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        bound = memory_bound(data, chunks)
        self.assertLess(peak, bound, 'peak allocation of the sink')
        self.most_of_bound = max(self.most_of_bound, peak / bound)
        # Nothing outlives the sink: no spill file, no inflating thread.
        self.assertEqual([], streams.open_files(self.work))
        self.assertEqual([], [t.name for t in threading.enumerate()
                              if t.name.startswith('qcow2')])
        return result, out

    def feed(self, sink, data, chunks):
        try:
            view, at, n = memoryview(data), 0, 0
            while at < len(data):
                size = chunks[n % len(chunks)]
                sink.write(view[at:at + size])
                at, n = at + size, n + 1
            return sink.finish()
        except exception.IronicImagesException as error:
            return error
        except Exception as error:
            self.fail('the sink raised %r' % error)

    def qemu_convert(self, path):
        """qemu-img's raw disk of ``path``, or None when it refuses."""
        try:
            detected = inspection.inspect_file(path, HREF)
            if gate.check_image(detected, HREF) != 'qcow2':
                return None
        except exception.IronicImagesException:
            # The gate refuses: qemu-img must not open it (a backing
            # file or data file name could be any host path).
            return None
        out = os.path.join(self.work, 'qemu.raw')
        try:
            subprocess.run(
                ['qemu-img', 'convert', '-U', '-f', 'qcow2', '-O', 'raw',
                 path, out], check=True, capture_output=True,
                stdin=subprocess.DEVNULL, timeout=QEMU_TIMEOUT,
                preexec_fn=_limit_qemu)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            return None
        return out

    def check(self, data, chunks):
        """Stream ``data`` and compare with qemu-img: one of OUTCOMES."""
        path = os.path.join(self.work, 'mutant.qcow2')
        with open(path, 'wb') as f:
            f.write(data)
        result, ours = self.stream(data, chunks)
        refused = isinstance(result, exception.IronicImagesException)
        if not refused and result.converted is None:
            return 'fell back'
        expected = self.qemu_convert(path)
        if refused:
            return ('refused, qemu-img too' if expected is None
                    else 'refused, qemu-img accepts')
        self.assertEqual('raw', result.converted)
        if expected is None:
            return 'qemu-img refused'
        self.assertEqual(os.path.getsize(expected), os.path.getsize(ours),
                         'raw disk size')
        self.assertEqual(os.path.getsize(ours), result.size)
        if result.size > READ_COMPARE_MAX:
            compared = subprocess.run(
                ['qemu-img', 'compare', '-q', '-f', 'raw', '-F', 'raw',
                 expected, ours], capture_output=True,
                stdin=subprocess.DEVNULL, timeout=QEMU_TIMEOUT)
            self.assertEqual(0, compared.returncode,
                             'the raw disk differs from qemu-img\'s')
        elif not filecmp.cmp(expected, ours, shallow=False):
            self.fail('the raw disk differs from qemu-img\'s at byte %d'
                      % first_difference(expected, ours))
        return 'same'

    def run_examples(self, examples, one):
        """Run ``one(data)`` on hypothesis examples; count the outcomes.

        :param examples: how many (see :func:`examples`).
        :param one: called with hypothesis' ``data``; returns the classes
            of the input (an iterable of names) and the outcome.
        :returns: the tally, ``{(class, outcome): count}``.
        """
        tally = collections.Counter()

        # Images are built from many draws: their smallest is not small.
        @hypothesis.settings(
            max_examples=examples,
            suppress_health_check=[hypothesis.HealthCheck.large_base_example,
                                   hypothesis.HealthCheck.too_slow,
                                   hypothesis.HealthCheck.data_too_large])
        @hypothesis.given(strategies.data())
        def run(data):
            classes, outcome = one(data)
            for what in classes:
                tally[what, outcome] += 1

        run()
        return tally

    def report(self, tally):
        """Attach and print a tally: {(class, outcome): count}."""
        lines = ['%s: %s' % (what, ', '.join(
            '%s %d' % (outcome, tally[what, outcome])
            for outcome in OUTCOMES if tally[what, outcome]))
            for what in sorted({what for what, _outcome in tally})]
        lines.append('largest allocation: %d%% of the bound'
                     % (100 * self.most_of_bound))
        self.addDetail('tally', base.text('\n'.join(lines)))
        base.say('%s:\n  %s' % (self.id(), '\n  '.join(lines)))


def examples(count):
    """Examples for a fuzz test that runs ``count`` in CI.

    ``IRONIC_IMAGES_QCOW2_EXAMPLES`` sets the number (a long run); else
    the ``explore`` profile (``IRONIC_IMAGES_HYPOTHESIS=explore``) runs
    ten times as many.
    """
    given = os.environ.get(EXAMPLES_VARIABLE)
    if given:
        return int(given)
    if os.environ.get(base.PROFILE_VARIABLE) == 'explore':
        return 10 * count
    return count


def first_difference(left, right):
    with open(left, 'rb') as a, open(right, 'rb') as b:
        offset = 0
        while True:
            x, y = a.read(units.Mi), b.read(units.Mi)
            if x != y:
                for i, (p, q) in enumerate(zip(x, y)):
                    if p != q:
                        return offset + i
                return offset + min(len(x), len(y))
            if not x:
                return -1
            offset += len(x)
