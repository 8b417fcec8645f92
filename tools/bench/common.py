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


def proc_io():
    """Return /proc/self/io as a dict of ints (empty when unavailable).

    ``rchar`` counts the bytes read by read(2)-like calls on files and
    pipes (not recv(2) on sockets), ``read_bytes`` those fetched from the
    storage. Both include the children the process has reaped (qemu-img).
    """
    try:
        with open('/proc/self/io') as io_file:
            return {key: int(value) for key, _sep, value in
                    (line.partition(': ') for line in io_file) if value}
    except (OSError, ValueError):
        return {}


class ReadsBeforeConversion:
    """What a process reads before a conversion starts, and in all.

    Enter it around the measured call and wrap the function that starts
    the conversion with :meth:`wrap`; :meth:`result` gives the deltas of
    /proc/self/io from entering to the conversion's start and to the end.
    """

    def __init__(self):
        self.start = self.at_conversion = self.end = None

    def wrap(self, convert):
        def wrapper(*args, **kwargs):
            if self.at_conversion is None:
                self.at_conversion = proc_io()
            return convert(*args, **kwargs)
        return wrapper

    def __enter__(self):
        self.start = proc_io()
        return self

    def __exit__(self, *exc_info):
        self.end = proc_io()

    def result(self):
        """The deltas, as keyword arguments for :func:`report`."""
        def delta(snapshot, key):
            if not snapshot or key not in self.start:
                return None
            return snapshot[key] - self.start[key]

        before = self.at_conversion or self.end
        return {'read_before_conversion': delta(before, 'rchar'),
                'disk_read_before_conversion': delta(before, 'read_bytes'),
                'read_total': delta(self.end, 'rchar'),
                'disk_read_total': delta(self.end, 'read_bytes'),
                'converted': self.at_conversion is not None}


class TempSpace:
    """The peak of the disk space the files under a directory take.

    A thread adds up the allocated blocks (``st_blocks``) of every file
    under the directory every ``interval`` seconds while the block runs;
    :attr:`peak` is the largest sum seen, in bytes. A file that lives
    shorter than the interval can be missed; the temp files of an image
    conversion live for the whole download.
    """

    def __init__(self, directory, interval=0.01):
        import threading
        self.directory = directory
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _usage(self):
        total = 0
        for root, _dirs, files in os.walk(self.directory):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_blocks
                except OSError:
                    pass
        return total * 512

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._usage())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._usage())
