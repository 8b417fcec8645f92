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

"""Shared by the benchmark case scripts (stdlib only: they also run in
Ironic's virtualenv).

A case script does its job once and prints one line to stdout,
``BENCH-RESULT {json}``, with at least ``bytes`` and ``seconds`` (the time of
the measured call alone, without interpreter start-up, imports or
configuration), optionally ``cpu_seconds`` (the CPU time of the process
during that call) and ``peak_rss_kib``: the VmHWM of the process at its
end, which :func:`report` adds.
"""

import json
import os
import sys
import time

MARKER = 'BENCH-RESULT '


def proc_status_kib(key):
    """Return a /proc/self/status value in KiB (e.g. ``VmRSS``), or None."""
    try:
        with open('/proc/self/status') as status:
            for line in status:
                name, _sep, value = line.partition(':')
                if name == key:
                    return int(value.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return None


def report(size, seconds, cpu_seconds=None, **extra):
    """Print the result line the harness reads.

    :param size: bytes moved.
    :param seconds: duration of the measured call.
    :param cpu_seconds: CPU time (user + system, all threads) of the
        process during the measured call.
    :param extra: more JSON-serialisable facts, e.g. ``verified``.
    """
    result = {'bytes': size, 'seconds': seconds, 'cpu_seconds': cpu_seconds,
              'peak_rss_kib': proc_status_kib('VmHWM')}
    result.update(extra)
    sys.stdout.write(MARKER + json.dumps(result) + '\n')
    sys.stdout.flush()


class Measure:
    """Time the calls inside a ``with`` block, then :meth:`report` them.

    Wall and CPU time start when the block is entered, after imports and
    configuration; the RSS at that moment is reported as ``rss_before``.
    """

    def __enter__(self):
        self.rss_before = proc_status_kib('VmRSS')
        self._start = time.perf_counter()
        self._start_cpu = time.process_time()
        return self

    def __exit__(self, *exc_info):
        self.seconds = time.perf_counter() - self._start
        self.cpu_seconds = time.process_time() - self._start_cpu

    def report(self, output, **extra):
        """Report the measured block, which wrote the file ``output``."""
        report(os.path.getsize(output), self.seconds, self.cpu_seconds,
               rss_before_kib=self.rss_before, **extra)


def fail(message):
    """Exit with an error the harness shows."""
    sys.stderr.write('error: %s\n' % message)
    sys.exit(1)
