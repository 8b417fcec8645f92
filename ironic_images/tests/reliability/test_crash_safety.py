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

"""Crash safety: ``ironic-images download`` and ``fetch`` killed by SIGKILL.

The command runs in a child process against nginx on loopback (rate
limited, so a kill lands anywhere: before the request, mid-transfer,
during conversion or after the rename) and is killed at a random moment.
Property: the destination is either absent or the complete, verified
image, never partial; the temp files the killed process left are removed
by the next run, which succeeds; a live writer's temp file is never
removed.
"""

import collections
import hashlib
import os
import signal
import subprocess
import sys
import time

from oslo_utils import units

from ironic_images.common import fileutils
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import base as servers_base
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.reliability import base

KILLS = 10


def sha256_file(path):
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


def _kill_group(pgid):
    """SIGKILL what is left of a killed command's process group.

    :returns: 1 when something was left (a child such as qemu-img that
        outlived the command), else 0.
    """
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return 0
    return 1


def _stop(process):
    """Kill a command's process group, unless the command was reaped.

    Until it is reaped its pid, hence its group's id, cannot be reused;
    after, the test has already killed what was left of the group.
    """
    if process.returncode is None:
        _kill_group(process.pid)
        process.wait()


class TestStaleParts(base.ReliabilityTestCase):
    """What :func:`fileutils.remove_stale_parts` removes, and keeps."""

    HOLDER = ('import sys, time\n'
              'from ironic_images.common import fileutils\n'
              'print(fileutils.part_path(sys.argv[1]), flush=True)\n'
              'time.sleep(60)\n')

    def test_only_dead_writers_parts(self):
        dest = os.path.join(self.dest_dir, 'disk.img')
        holder = subprocess.Popen([sys.executable, '-c', self.HOLDER, dest],
                                  stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.stdout.close)
        self.addCleanup(holder.wait)
        self.addCleanup(holder.kill)
        live_elsewhere = holder.stdout.readline().strip()
        live_here = fileutils.part_path(dest)
        self.addCleanup(fileutils.remove_quietly, live_here)
        # Look-alikes that are not temp files of disk.img.
        others = ['.disk.img.part', '.disk.img.abc.part', 'disk.img.part',
                  '.disk.img.x.abcd1234.part', '.disk.imgabcd1234.part']
        for name in others:
            open(os.path.join(self.dest_dir, name), 'w').close()
        linked = os.path.join(self.dest_dir, '.disk.img.linked12.part')
        os.link(os.path.join(self.dest_dir, others[0]), linked)
        self.assertEqual([], fileutils.remove_stale_parts(dest))
        self.assertTrue(os.path.exists(live_elsewhere))
        self.assertTrue(os.path.exists(live_here))

        holder.send_signal(signal.SIGKILL)
        holder.wait()
        self.assertEqual([os.path.basename(live_elsewhere)],
                         fileutils.remove_stale_parts(dest))
        self.assertTrue(os.path.exists(live_here))
        self.assertTrue(os.path.exists(linked))
        for name in others:
            self.assertTrue(os.path.exists(os.path.join(self.dest_dir,
                                                        name)))

    def test_a_new_part_cleans_up(self):
        dest = os.path.join(self.dest_dir, 'disk.img')
        stale = os.path.join(self.dest_dir, '.disk.img.deadbeef.part')
        with open(stale, 'wb') as f:
            f.write(b'partial')
        with fileutils.atomic_write(dest) as f:
            self.assertFalse(os.path.exists(stale))
            f.write(b'whole')
        self.assertEqual(['disk.img'], os.listdir(self.dest_dir))


class TestKilledCommands(base.ReliabilityTestCase):
    """SIGKILL of the command at random moments, then a clean re-run."""

    TIMEOUT = 300

    def setUp(self):
        super().setUp()
        servers_base.require_binary('qemu-img')
        self.rng, self.seed = base.seeded_random(self)
        root = os.path.join(self.tmp, 'root')
        os.mkdir(root)
        raw = os.path.join(root, 'disk.raw')
        with open(raw, 'wb') as f:
            f.write(self.rng.randbytes(8 * units.Mi))
        images.make_image('qcow2', root, size=8 * units.Mi)
        self.qcow2 = [name for name in os.listdir(root)
                      if name.endswith('qcow2')][0]
        self.sums = {name: sha256_file(os.path.join(root, name))
                     for name in os.listdir(root)}
        # 8 MiB at 16 MiB/s: about half a second of transfer to land in.
        self.server = self.useFixture(nginx.NginxFixture(root,
                                                         limit_rate='16m'))
        self.env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
        self.master_dir = os.path.join(self.tmp, 'master')
        self.config_file = os.path.join(self.tmp, 'ironic-images.conf')
        with open(self.config_file, 'w') as f:
            f.write('[image_cache]\nmaster_path = %s\n' % self.master_dir)

    def leftovers(self):
        """Temp files in the destination and master-image directories."""
        found = []
        for directory in (self.dest_dir, self.master_dir):
            if os.path.isdir(directory):
                found.extend(os.path.join(directory, name)
                             for name in os.listdir(directory)
                             if name.endswith(fileutils.PART_SUFFIX))
        return sorted(found)

    def start(self, argv, **kwargs):
        """Popen in its own session, killed with its children on cleanup.

        A failed assertion or the test's timeout must not leave a
        download (or its qemu-img) running.
        """
        process = subprocess.Popen(argv, env=self.env,
                                   stdout=subprocess.DEVNULL,
                                   start_new_session=True, **kwargs)
        self.addCleanup(_stop, process)
        return process

    def command(self, *args):
        return [sys.executable, '-m', 'ironic_images.cmd.main',
                '--config-file', self.config_file] + list(args)

    def run_to_end(self, argv):
        result = subprocess.run(argv, env=self.env, capture_output=True,
                                text=True, timeout=120)
        self.assertEqual(0, result.returncode, result.stderr)

    def wait_for_temp_file(self, process, old):
        """Wait until the command made a temp file, or ended."""
        deadline = time.monotonic() + 120
        while (not set(self.leftovers()) - old
               and process.poll() is None):
            self.assertLess(time.monotonic(), deadline,
                            'no temp file and no exit in 120 s')
            time.sleep(0.002)

    def kill_at_random(self, argv, dest, valid_sha256, title, reset=None):
        """Kill ``argv`` KILLS times at random moments, then run it whole.

        Each run is the "next run" of the killed one before it: when it
        makes its own temp file it removes theirs. A quarter of the kills
        land anywhere from the start (interpreter start-up included), the
        rest at a random moment after the temp file appeared.
        """
        started = time.monotonic()
        with open(os.path.join(self.tmp, 'first-run.err'), 'w+') as err:
            process = self.start(argv, stderr=err)
            self.wait_for_temp_file(process, set())
            written = time.monotonic()
            status = process.wait(120)
            err.seek(0)
            self.assertEqual(0, status, err.read())
        # From start-up to the temp file, and from there to the end.
        starting, writing = written - started, time.monotonic() - written
        os.unlink(dest)
        if reset:
            reset()
        landed = collections.Counter()
        orphans = 0
        dead = set()
        for number in range(KILLS):
            where = '%s kill %d of seed %d' % (title, number, self.seed)
            process = self.start(argv, stderr=subprocess.DEVNULL)
            if self.rng.random() < 0.25:
                time.sleep(self.rng.uniform(0.0, starting + writing))
            else:
                self.wait_for_temp_file(process, dead)
                time.sleep(self.rng.uniform(0.0, writing * 1.1))
            process.send_signal(signal.SIGKILL)
            status = process.wait()
            orphans += _kill_group(process.pid)
            left = set(self.leftovers())
            new = left - dead
            for directory in {os.path.dirname(path) for path in new}:
                # This run made a temp file here: it removed the older
                # ones of the same destination (one per directory here).
                # Another directory's may wait for a run that gets there.
                self.assertEqual(set(), {
                    path for path in dead & left
                    if os.path.dirname(path) == directory}, where)
            dead |= left
            landed['exited' if status == 0 else
                   'after the rename' if os.path.exists(dest) else
                   'temp file written' if new else
                   'before any temp file'] += 1
            if os.path.exists(dest):
                # Only a finished, renamed, verified file may be there.
                self.assertEqual(valid_sha256, sha256_file(dest), where)
                os.unlink(dest)
            if reset:
                reset()
        self.run_to_end(argv)
        self.assertEqual(valid_sha256, sha256_file(dest), title)
        self.assertEqual([], self.leftovers(), title)
        line = ('%s (seed %d): %d SIGKILLs: %s; temp files left by kills '
                '%d, all removed by the next run; children surviving the '
                'kill %d; lost 0' % (
                    title, self.seed, KILLS, ', '.join(
                        '%s=%d' % item for item in sorted(landed.items())),
                    len(dead), orphans))
        self.addDetail('tally', base.text(line))
        base.say(line)

    def test_download(self):
        dest = os.path.join(self.dest_dir, 'disk.img')
        self.kill_at_random(
            self.command('download', self.server.url_for('disk.raw'), dest,
                         '--checksum', 'sha256:' + self.sums['disk.raw']),
            dest, self.sums['disk.raw'], 'download')

    def test_fetch(self):
        dest = os.path.join(self.dest_dir, 'disk.img')
        self.kill_at_random(
            self.command('fetch', self.server.url_for('disk.raw'), dest,
                         '--checksum', 'sha256:' + self.sums['disk.raw']),
            dest, self.sums['disk.raw'], 'fetch')

    def test_cache_fetch(self):
        """The cache's next start removes what a killed fetch left."""
        dest = os.path.join(self.dest_dir, 'disk.img')
        self.kill_at_random(
            self.command('cache', 'fetch', self.server.url_for('disk.raw'),
                         dest, '--checksum',
                         'sha256:' + self.sums['disk.raw']),
            dest, self.sums['disk.raw'], 'cache fetch',
            reset=self.forget_masters)

    def forget_masters(self):
        """Remove the finished masters, so that the next run downloads."""
        for name in os.listdir(self.master_dir):
            path = os.path.join(self.master_dir, name)
            if os.path.isfile(path) and not name.startswith('.'):
                os.unlink(path)

    def test_fetch_and_convert(self):
        dest = os.path.join(self.dest_dir, 'disk.img')
        raw = os.path.join(self.tmp, 'expected.raw')
        subprocess.run(['qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                        os.path.join(self.server.root_dir, self.qcow2), raw],
                       check=True)
        self.kill_at_random(
            self.command('fetch', '--raw', self.server.url_for(self.qcow2),
                         dest),
            dest, sha256_file(raw), 'fetch --raw')
