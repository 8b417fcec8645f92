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

"""Tests of the progress of a running process, told by what it reads."""

import os
import subprocess
import sys

import fixtures

from ironic_images.qemu import progress as qemu_progress
from ironic_images.tests import base

# Reads a file in 64 KiB pieces, slowly enough to be watched.
_SLOW_READER = """
import sys, time
with open(sys.argv[1], 'rb', buffering=0) as f:
    while f.read(65536):
        time.sleep(0.01)
"""


class ReadProgressTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                                 'source')
        with open(self.path, 'wb') as f:
            f.write(os.urandom(4 * 1024 * 1024))

    def test_reports_what_the_process_reads(self):
        seen = []
        total = qemu_progress.data_size(self.path)
        watcher = qemu_progress.ReadProgress(
            lambda done, of: seen.append((done, of)), total, interval=0.02)
        process = subprocess.Popen(
            [sys.executable, '-c', _SLOW_READER, self.path])
        watcher.on_execute(process)
        process.wait()
        watcher.on_completion(process)
        self.assertGreater(len(seen), 2, seen)
        self.assertEqual((0, total), seen[0])
        self.assertEqual({total}, {of for _done, of in seen})
        dones = [done for done, _of in seen]
        self.assertEqual(sorted(dones), dones)
        self.assertLessEqual(dones[-1], total)
        # It saw the file being read, not just the start and the end.
        self.assertTrue(any(0 < d < total for d in dones), dones)

    def test_stops_with_the_process_and_runs_again(self):
        seen = []
        watcher = qemu_progress.ReadProgress(
            lambda done, of: seen.append(done), 10, interval=0.01)
        for _attempt in range(2):
            process = subprocess.Popen([sys.executable, '-c', 'pass'])
            watcher.on_execute(process)
            process.wait()
            watcher.on_completion(process)
        count = len(seen)
        # No thread is left reporting.
        self.assertIsNone(watcher._thread)
        self.assertEqual(count, len(seen))

    def test_a_failing_display_does_not_fail_anything(self):
        def _broken(done, total):
            raise RuntimeError('display gone')

        watcher = qemu_progress.ReadProgress(_broken, 10, interval=0.01)
        process = subprocess.Popen(
            [sys.executable, '-c', 'import time; time.sleep(0.2)'])
        watcher.on_execute(process)
        process.wait()
        watcher.on_completion(process)

    def test_data_size_leaves_out_holes(self):
        sparse = self.path + '.sparse'
        with open(sparse, 'wb') as f:
            f.truncate(64 * 1024 * 1024)
            f.write(b'x' * 4096)
        self.assertLess(qemu_progress.data_size(sparse), 1024 * 1024)
        self.assertEqual(4 * 1024 * 1024,
                         qemu_progress.data_size(self.path))

    def test_bytes_read_of_a_gone_process(self):
        process = subprocess.Popen([sys.executable, '-c', 'pass'])
        process.wait()
        self.assertIsNone(qemu_progress.bytes_read(process.pid))
        self.assertIsInstance(qemu_progress.bytes_read(os.getpid()), int)
