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

"""qcow2 images in every layout qemu writes, for the stream decoder's tests.

:class:`Qcow2StreamTestCase` makes each variant with qemu-img and qemu-io
(compressed, version 2, 2 MiB clusters, preallocated metadata, an L1
table moved to the end by a resize, data written in random guest order,
an internal snapshot, lazy refcounts) and compares a fetched raw disk with
what ``qemu-img convert`` makes of it. The module functions are shared
with the reliability suite's differential fuzzing.
"""

import filecmp
import os
import random
import struct
import subprocess

import fixtures
from oslo_utils import units

from ironic_images.fetch import fetcher
from ironic_images.qemu import convert as qemu_convert
from ironic_images.qemu import process
from ironic_images.tests import base
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import base as servers_base

SIZE = 8 * units.Mi
# Past 512 MiB, a 64 KiB-cluster image needs a second L1 entry: a resize
# there moves the L1 table to the end of the file.
RESIZED = units.Gi
# Files larger than this are compared by qemu-img compare (which skips
# holes) rather than read into memory.
READ_COMPARE_MAX = 64 * units.Mi
MANY_SIZE = 32 * units.Mi


def qemu_io(path, *commands):
    """Run qemu-io commands on a qcow2 image (skips outside CI if absent)."""
    binary = servers_base.require_binary('qemu-io')
    args = [binary, '-f', 'qcow2']
    for command in commands:
        args += ['-c', command]
    subprocess.run(args + [path], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)


def qcow2_fields(path):
    """The fixed header fields of a qcow2 image, as a dict."""
    with open(path, 'rb') as f:
        head = f.read(72)
    names = ('magic', 'version', 'backing_offset', 'backing_size',
             'cluster_bits', 'size', 'crypt', 'l1_size', 'l1_offset',
             'refcount_offset', 'refcount_clusters', 'snapshots',
             'snapshots_offset')
    return dict(zip(names, struct.unpack('>4sIQIIQIIQQIIQ', head)))


def open_files(directory):
    """The files in ``directory`` this process has open (even unlinked)."""
    found = []
    for fd in os.listdir('/proc/self/fd'):
        try:
            target = os.readlink('/proc/self/fd/' + fd)
        except OSError:
            continue  # the descriptor listdir itself used
        if target.startswith(directory + os.sep):
            found.append(target)
    return found


class Qcow2StreamTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(240, gentle=True))
        servers_base.require_binary('qemu-img')
        servers_base.require_binary('qemu-io')
        self.config(webserver_connection_timeout=5)
        # Chunks that split clusters, so a cluster arrives in pieces.
        self.config(chunk_size=100000, group='download')
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.root = self.images_dir
        self.dest_dir = os.path.join(self.tmp, 'dest')
        os.mkdir(self.dest_dir)
        self.work = os.path.join(self.tmp, 'work')
        os.mkdir(self.work)
        # Incompressible data, the same on every run.
        self.noise = os.path.join(self.work, 'noise')
        with open(self.noise, 'wb') as f:
            f.write(random.Random(20261122).randbytes(units.Mi))
        self.convert = self.useFixture(fixtures.MockPatchObject(
            qemu_convert, 'convert_image',
            wraps=qemu_convert.convert_image)).mock
        self.execute = self.useFixture(fixtures.MockPatchObject(
            process, 'execute', wraps=process.execute)).mock

    # --- images ------------------------------------------------------------

    def path(self, name):
        return os.path.join(self.root, name)

    def create(self, name, size=SIZE, *options):
        path = self.path(name)
        images.qemu_img('create', '-q', '-f', 'qcow2', *options, path, size)
        return path

    def fill(self, path, size=SIZE):
        """Write data of several kinds; none of it is cluster-aligned only.

        Incompressible clusters, pattern bytes across a cluster boundary
        at an odd offset, a cluster zeroed inside data (the zero flag in
        version 3) and the last sector of the disk.
        """
        qemu_io(path,
                'write -P 0x11 0 4k',
                'write -s %s 64k 192k' % self.noise,
                'write -P 0x5a 1000000 70000',
                'write -s %s 3M 256k' % self.noise,
                'write -z 3200k 64k',
                'write -P 0xee %d 512' % (size - 512))
        return path

    def make(self, variant):
        """Make the qcow2 image of a variant in the served root."""
        return getattr(self, '_make_' + variant.replace('-', '_'))(
            variant + '.qcow2')

    def _make_default(self, name):
        return self.fill(self.create(name))

    def _make_converted(self, name):
        # What qemu-img convert writes: data in guest order, then tables.
        return images.make_image('qcow2', self.root, size=SIZE)

    def _compressed(self, name, *options):
        source = self.fill(self.create('uncompressed-' + name))
        # Clusters that compress to about 24 KiB each: packed together,
        # some straddle a host cluster boundary.
        qemu_io(source, *['write -s %s %d 24k' % (self.noise, offset)
                          for offset in range(4 * units.Mi, 5 * units.Mi,
                                              64 * units.Ki)])
        qemu_io(source, *['write -P 0x%02x %d 40k' % (0x40 + n, offset)
                          for n, offset in enumerate(range(
                              4 * units.Mi + 24 * units.Ki, 5 * units.Mi,
                              64 * units.Ki))])
        path = self.path(name)
        images.qemu_img('convert', '-f', 'qcow2', '-O', 'qcow2', '-c',
                        *options, source, path)
        os.unlink(source)
        return path

    def _make_zlib(self, name):
        return self._compressed(name)

    def _make_zstd(self, name):
        path = self._compressed(name, '-o', 'compression_type=zstd')
        # Compressed writes after the conversion: packed after the tables.
        qemu_io(path, 'write -c -P 0x77 5M 128k',
                'write -c -s %s 6M 64k' % self.noise)
        return path

    def _make_zstd_many(self, name):
        # A disk of compressible clusters, all different, as
        # virt-sparsify or qemu-img convert -c make cloud images: hundreds
        # of compressed clusters, more than the inflating threads hold.
        raw = os.path.join(self.work, name + '.raw')
        rng = random.Random(3)
        with open(raw, 'wb') as f:
            for number in range(MANY_SIZE // (64 * units.Ki)):
                f.write(rng.randbytes(16 * units.Ki)
                        + bytes([number % 251 + 1]) * (48 * units.Ki))
        path = self.path(name)
        images.qemu_img('convert', '-f', 'raw', '-O', 'qcow2', '-c', '-o',
                        'compression_type=zstd', raw, path)
        os.unlink(raw)
        return path

    def _make_zlib_2m(self, name):
        return self._compressed(name, '-o', 'cluster_size=2M')

    def _make_v2(self, name):
        return self.fill(self.create(name, SIZE, '-o', 'compat=0.10'))

    def _make_cluster_2m(self, name):
        return self.fill(self.create(name, SIZE, '-o', 'cluster_size=2M'))

    def _make_preallocated(self, name):
        return self.fill(self.create(name, SIZE, '-o',
                                     'preallocation=metadata'))

    def _make_lazy_refcounts(self, name):
        return self.fill(self.create(name, SIZE, '-o', 'lazy_refcounts=on'))

    def _make_odd_size(self, name):
        # The last cluster is partly past the end of the disk.
        size = SIZE + 3 * 512
        return self.fill(self.create(name, size), size)

    def _make_resized(self, name):
        path = self.fill(self.create(name))
        images.qemu_img('resize', '-f', 'qcow2', path, RESIZED)
        qemu_io(path, 'write -P 0x21 700M 128k',
                'write -s %s 2M 64k' % self.noise,
                'write -P 0x22 %d 4k' % (RESIZED - 4096))
        return path

    def _make_random_order(self, name):
        path = self.create(name, RESIZED)
        rng = random.Random(7)
        # Clusters in both L2 tables (either side of 512 MiB), some
        # written twice, some unaligned, in shuffled order.
        offsets = [n * 64 * units.Ki for n in range(24)] + [
            512 * units.Mi + n * 64 * units.Ki - 3 * 512 for n in range(12)]
        offsets += rng.sample(offsets, 6)
        rng.shuffle(offsets)
        commands = []
        for number, offset in enumerate(offsets):
            if number % 3:
                commands.append('write -P 0x%02x %d 64k'
                                % (number + 1, offset))
            else:
                commands.append('write -s %s %d 64k' % (self.noise,
                                                        offset))
        qemu_io(path, *commands)
        return path

    def _make_snapshot(self, name):
        path = self.fill(self.create(name))
        images.qemu_img('snapshot', '-c', 'before', path)
        # Copy-on-write of shared clusters, and new ones.
        qemu_io(path, 'write -P 0x33 64k 64k', 'write -P 0x34 1M 16k',
                'write -z 3M 64k', 'write -P 0x35 6M 64k')
        return path

    def _make_cluster_4k(self, name):
        return self.fill(self.create(name, SIZE, '-o', 'cluster_size=4k'))

    def reference(self, path):
        """What qemu-img makes of a qcow2 image: the expected raw disk."""
        out = os.path.join(self.work, os.path.basename(path) + '.raw')
        images.qemu_img('convert', '-f', 'qcow2', '-O', 'raw', path, out)
        return out

    # --- checks ------------------------------------------------------------

    def assertSameRaw(self, expected, path):
        size = os.path.getsize(expected)
        self.assertEqual(size, os.path.getsize(path))
        if size <= READ_COMPARE_MAX:
            self.assertTrue(filecmp.cmp(expected, path, shallow=False),
                            '%s differs from %s' % (path, expected))
        else:
            images.qemu_img('compare', '-f', 'raw', '-F', 'raw', expected,
                            path)

    def assertOnly(self, names):
        """The destination directory holds these files, nothing else."""
        self.assertEqual(sorted(names), sorted(os.listdir(self.dest_dir)))

    def qemu_img_commands(self):
        return [call.args[0] for call in self.execute.call_args_list]

    def assertStreamed(self):
        self.assertEqual(0, self.convert.call_count)
        self.assertNotIn('convert', self.qemu_img_commands())

    def dest(self, name):
        return os.path.join(self.dest_dir, name)

    def fetch_to_raw(self, href, name):
        self.convert.reset_mock()
        self.execute.reset_mock()
        return fetcher.fetch_to_raw(None, href, self.dest(name))
