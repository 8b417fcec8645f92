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

"""ironic_images.qemu.info and qemu.convert against the real qemu-img.

Images come from :mod:`ironic_images.tests.functional.images`; every
conversion is checked with ``qemu-img compare`` against a raw image with
the same data pattern.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import fixtures
from oslo_concurrency import processutils

from ironic_images import exception
from ironic_images.qemu import convert as qemu_convert
from ironic_images.qemu import info as qemu_info
from ironic_images.qemu import process
from ironic_images.tests import base
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import base as servers_base

MiB = images.MiB
SIZE = images.DEFAULT_SIZE

# Input kinds of the factory and the format a caller declares for each
# (Glance names, so the translation to qemu-img's is exercised too).
INPUTS = {
    'raw': 'raw',
    'qcow2': 'qcow2',
    'qcow2-v2': 'qcow2',
    'qcow2-compressed': 'qcow2',
    'vmdk-monolithic-sparse': 'vmdk',
    'vmdk-stream-optimized': 'vmdk',
    'vhdx': 'vhdx',
    'vpc': 'vhd',
    'vdi': 'vdi',
}

# Outputs: (format, subformat) -> the qemu-img format to compare with.
OUTPUTS = {
    ('raw', None): 'raw',
    ('qcow2', None): 'qcow2',
    ('vmdk', None): 'vmdk',
    ('vmdk', 'streamOptimized'): 'vmdk',
    ('vhd', None): 'vpc',
    ('vhd', 'fixed'): 'vpc',
    ('vhdx', None): 'vhdx',
}

# Run in a child process, so that a resource limit or a private mount
# stays there: convert argv[1] (qcow2) to argv[2] (raw) with the file size
# limited to argv[3] bytes (0: no limit); print the error and what is left
# in the destination's directory, as JSON.
_CHILD = '''
import json, os, resource, sys
from ironic_images import exception, image_utils
source, dest, fsize = sys.argv[1], sys.argv[2], int(sys.argv[3])
if fsize:
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
result = {'error': None}
try:
    image_utils.convert_image(source, dest, 'raw', 'qcow2')
except exception.IronicImagesException as e:
    result = {'error': type(e).__name__, 'message': str(e)}
result['listing'] = sorted(os.listdir(os.path.dirname(dest)))
print(json.dumps(result))
'''


class QemuImgTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        servers_base.require_binary('qemu-img')
        qemu_convert._DIRECT_IO_ANSWERS.clear()
        self.addCleanup(qemu_convert._DIRECT_IO_ANSWERS.clear)
        # Every input format of the matrix; the safety gate still runs.
        self.config(permitted_formats=['raw', 'gpt', 'qcow2', 'iso', 'vmdk',
                                       'vhdx', 'vhd', 'vdi'],
                    group='image_format')
        self.work = self.useFixture(fixtures.TempDir()).path
        self.out_dir = os.path.join(self.work, 'out')
        os.mkdir(self.out_dir)

    def make(self, kind, size=SIZE):
        return images.make_image(kind, self.work, size)

    def assertSameData(self, reference, path, fmt):
        result = subprocess.run(
            ['qemu-img', 'compare', '-f', 'raw', '-F', fmt, reference, path],
            capture_output=True, text=True, stdin=subprocess.DEVNULL)
        self.assertEqual(0, result.returncode,
                         'qemu-img compare: %s%s' % (result.stdout,
                                                     result.stderr))

    def assertNothingIn(self, directory, but=()):
        self.assertEqual(sorted(but), sorted(os.listdir(directory)))

    def info(self, path, fmt):
        return json.loads(images.qemu_img('info', '-f', fmt,
                                          '--output=json', path))


def _conversion_test(kind, src_format, out_format, out_subformat, qemu_fmt):
    def test(self):
        source = self.make(kind)
        reference = images.make_raw(self.work, SIZE)
        dest = os.path.join(self.out_dir, 'out.img')
        qemu_convert.convert_image(source, dest, out_format, src_format,
                                   out_subformat=out_subformat)
        self.assertNothingIn(self.out_dir, ['out.img'])
        self.assertSameData(reference, dest, qemu_fmt)
        info = self.info(dest, qemu_fmt)
        self.assertEqual(qemu_fmt, info['format'])
        if out_subformat == 'streamOptimized':
            self.assertEqual(
                'streamOptimized',
                info['format-specific']['data']['create-type'])
    return test


class ConversionMatrixTestCase(QemuImgTestCase):
    """Every supported input to every output, checked by a compare."""


for _kind, _src in INPUTS.items():
    for (_out, _sub), _qemu in OUTPUTS.items():
        _name = 'test_%s_to_%s%s' % (
            _kind.replace('-', '_'), _out, '_' + _sub if _sub else '')
        setattr(ConversionMatrixTestCase, _name,
                _conversion_test(_kind, _src, _out, _sub, _qemu))


class ConvertTestCase(QemuImgTestCase):

    def test_raw_output_is_sparse(self):
        size = 256 * MiB
        source = self.make('qcow2', size)
        dest = os.path.join(self.out_dir, 'disk.raw')
        qemu_convert.convert_image(source, dest, 'raw', 'qcow2')
        st = os.stat(dest)
        self.assertEqual(size, st.st_size)
        # The pattern is 256 KiB of data; allow file-system slack.
        self.assertLess(st.st_blocks * 512, 4 * MiB)
        self.assertSameData(images.make_raw(self.work, size), dest, 'raw')

    def test_gpt_disk(self):
        # The inspector's name for a partitioned raw disk is accepted.
        source = self.make('gpt')
        dest = os.path.join(self.out_dir, 'disk.qcow2')
        qemu_convert.convert_image(source, dest, 'qcow2', 'gpt')
        self.assertSameData(source, dest, 'qcow2')
        raw = os.path.join(self.out_dir, 'disk.raw')
        qemu_convert.convert_image(dest, raw, 'raw', 'qcow2')
        self.assertSameData(source, raw, 'raw')

    def test_without_direct_io(self):
        source = self.make('qcow2')
        dest = os.path.join(self.out_dir, 'disk.raw')
        self.useFixture(fixtures.MockPatchObject(
            qemu_convert, '_supports_direct_io', autospec=True,
            return_value=False))
        qemu_convert.convert_image(source, dest, 'raw', 'qcow2')
        self.assertSameData(images.make_raw(self.work, SIZE), dest, 'raw')

    def test_direct_io_probe(self):
        self.assertTrue(qemu_convert._supports_direct_io(self.out_dir))
        self.assertNothingIn(self.out_dir)

    def test_replaces_existing_dest(self):
        dest = os.path.join(self.out_dir, 'disk.raw')
        with open(dest, 'wb') as f:
            f.write(b'old' * 1000)
        qemu_convert.convert_image(self.make('qcow2'), dest, 'raw', 'qcow2')
        self.assertSameData(images.make_raw(self.work, SIZE), dest, 'raw')
        self.assertNothingIn(self.out_dir, ['disk.raw'])

    def test_bad_input_leaves_nothing(self):
        source = self.make('garbage', MiB)
        dest = os.path.join(self.out_dir, 'disk.raw')
        e = self.assertRaises(exception.ImageUnacceptable,
                              qemu_convert.convert_image, source, dest, 'raw',
                              'qcow2', image_href='http://host/garbage')
        self.assertIn('http://host/garbage', str(e))
        self.assertIn('qcow2', str(e))
        self.assertNothingIn(self.out_dir)

    def test_hostile_input_never_reaches_qemu_img(self):
        # qemu-img info would open what these name; the format inspector
        # refuses them first.
        execute = self.useFixture(fixtures.MockPatch(
            'oslo_concurrency.processutils.execute',
            wraps=processutils.execute)).mock
        for kind, fmt in (('qcow2-backing-file', 'qcow2'),
                          ('qcow2-data-file', 'qcow2'),
                          ('vmdk-flat-host-file', 'vmdk'),
                          ('vmdk-monolithic-flat', 'vmdk')):
            source = self.make(kind)
            dest = os.path.join(self.out_dir, 'disk.raw')
            self.assertRaises(exception.InvalidImage,
                              qemu_convert.convert_image, source, dest,
                              'raw', fmt)
            self.assertRaises(exception.InvalidImage,
                              qemu_convert.resize_image, source, 2 * SIZE,
                              fmt)
            self.assertNothingIn(self.out_dir)
        execute.assert_not_called()

    def test_failed_convert_leaves_nothing(self):
        # A source_info from elsewhere skips the info run: qemu-img convert
        # itself meets the garbage.
        source = self.make('garbage', MiB)
        dest = os.path.join(self.out_dir, 'disk.raw')
        with open(dest, 'wb') as f:
            f.write(b'old')
        e = self.assertRaises(exception.ImageConvertFailed,
                              qemu_convert.convert_image, source, dest, 'raw',
                              'qcow2', source_info=object())
        self.assertIn('qemu-img convert failed', str(e))
        self.assertNothingIn(self.out_dir, ['disk.raw'])
        with open(dest, 'rb') as f:
            self.assertEqual(b'old', f.read())

    def test_output_of_another_format_refused(self):
        # A qcow2 whose disk holds a qcow2 image: the raw output starts
        # with a qcow2 header, and must not be taken for a raw disk.
        inner = self.make('qcow2')
        outer = os.path.join(self.work, 'outer.qcow2')
        images.qemu_img('convert', '-f', 'raw', '-O', 'qcow2', inner, outer)
        dest = os.path.join(self.out_dir, 'disk.raw')
        e = self.assertRaises(exception.ImageConvertFailed,
                              qemu_convert.convert_image, outer, dest, 'raw',
                              'qcow2')
        self.assertIn('qcow2', str(e))
        self.assertNothingIn(self.out_dir)

    def test_memory_limit_enforced(self):
        # 64 MiB of address space is too little for qemu-img convert's
        # buffers: the cap reaches the process, the failure counts as a
        # lack of memory (retried), and nothing is left.
        self.config(memory_limit_mb=64, attempts=2, group='image_convert')
        self.useFixture(fixtures.MockPatch('time.sleep'))
        execute = self.useFixture(fixtures.MockPatch(
            'oslo_concurrency.processutils.execute',
            wraps=processutils.execute)).mock
        source = self.make('qcow2')
        dest = os.path.join(self.out_dir, 'disk.raw')
        e = self.assertRaises(exception.ImageConvertFailed,
                              qemu_convert.convert_image, source, dest, 'raw',
                              'qcow2')
        self.assertIn('Cannot allocate memory', str(e))
        converts = [c for c in execute.call_args_list if c[0][1] == 'convert']
        self.assertEqual(2, len(converts))
        self.assertNothingIn(self.out_dir)

    def _data_qcow2(self, size):
        raw = os.path.join(self.work, 'data.raw')
        with open(raw, 'wb') as f:
            f.write(os.urandom(size))
        path = os.path.join(self.work, 'data.qcow2')
        images.qemu_img('convert', '-f', 'raw', '-O', 'qcow2', raw, path)
        return path

    def _run_child(self, argv_prefix, source, dest, fsize):
        result = subprocess.run(
            list(argv_prefix) + [sys.executable, '-c', _CHILD, source, dest,
                                 str(fsize)],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
            timeout=120)
        self.assertEqual(0, result.returncode, result.stderr)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def test_file_size_limit_leaves_nothing(self):
        source = self._data_qcow2(8 * MiB)
        dest = os.path.join(self.out_dir, 'disk.raw')
        result = self._run_child([], source, dest, MiB)
        self.assertEqual('ImageConvertFailed', result['error'],
                         result.get('message'))
        self.assertIn('File too large', result['message'])
        self.assertEqual([], result['listing'])

    def test_enospc_leaves_nothing(self):
        # A 2 MiB tmpfs mounted in a private mount namespace (so it
        # vanishes with the child) as the destination directory.
        unshare = shutil.which('unshare')
        if not unshare or subprocess.run(
                [unshare, '-rm', 'mount', '-t', 'tmpfs', 'none', self.work],
                capture_output=True).returncode:
            self.skipTest('cannot mount a tmpfs in a mount namespace here')
        source = self._data_qcow2(8 * MiB)
        dest = os.path.join(self.out_dir, 'disk.raw')
        mount = [unshare, '-rm', 'sh', '-c',
                 'mount -t tmpfs -o size=2m none "$0" && exec "$@"',
                 self.out_dir]
        result = self._run_child(mount, source, dest, 0)
        self.assertEqual('ImageConvertFailed', result['error'],
                         result.get('message'))
        self.assertIn('No space left on device', result['message'])
        self.assertEqual([], result['listing'])


class InfoTestCase(QemuImgTestCase):

    def test_accepted(self):
        for kind, fmt in (('qcow2', 'qcow2'), ('raw', 'raw'),
                          ('vmdk-monolithic-sparse', 'vmdk'),
                          ('vmdk-stream-optimized', 'vmdk'),
                          ('vhdx', 'vhdx'), ('vpc', 'vhd')):
            info = qemu_info.qemu_img_info(self.make(kind), fmt)
            self.assertGreaterEqual(info.virtual_size, SIZE, kind)

    def assertRefused(self, kind, fmt, check):
        e = self.assertRaises(exception.InvalidImage, qemu_info.qemu_img_info,
                              self.make(kind), fmt,
                              image_href='https://u:Secr3t@host/%s' % kind)
        self.assertIn('%s check failed' % check, str(e))
        self.assertIn('https://u:***@host/%s' % kind, str(e))
        self.assertNotIn('Secr3t', str(e))

    def test_backing_file_refused(self):
        self.assertRefused('qcow2-backing-file', 'qcow2', 'backing_file')

    def test_data_file_refused(self):
        self.assertRefused('qcow2-data-file', 'qcow2', 'data_file')

    def test_vmdk_monolithic_flat_refused(self):
        self.assertRefused('vmdk-monolithic-flat', 'vmdk',
                           'vmdk_allowed_types')

    def test_vmdk_host_file_refused(self):
        self.assertRefused('vmdk-flat-host-file', 'vmdk',
                           'vmdk_allowed_types')

    def test_wrong_format_refused(self):
        e = self.assertRaises(exception.ImageUnacceptable,
                              qemu_info.qemu_img_info, self.make('raw'),
                              'qcow2')
        self.assertIn('Image is not in qcow2 format', str(e))

    def test_cpu_limit_reaches_process(self):
        # No image makes qemu-img info spin for long, so check the cap
        # on the process itself: qemu-img reads /proc/self/limits for us.
        self.config(cpu_time_limit_s=17, memory_limit_mb=333,
                    group='image_convert')
        limits = process._limits()
        out = subprocess.run(
            [sys.executable, '-m', 'oslo_concurrency.prlimit',
             *limits.prlimit_args(), '--', 'cat', '/proc/self/limits'],
            capture_output=True, text=True, check=True).stdout
        self.assertRegex(out, r'Max cpu time\s+17\s+17')
        self.assertRegex(out, r'Max address space\s+%d\s+%d'
                         % (333 * MiB, 333 * MiB))


class DieWithParentTestCase(base.TestCase):

    def test_parent_death_signal_set(self):
        # What the child set, read back with PR_GET_PDEATHSIG (2).
        code = ('import ctypes\n'
                'value = ctypes.c_int()\n'
                'ctypes.CDLL(None).prctl(2, ctypes.byref(value))\n'
                'print(value.value)\n')
        out = subprocess.run([sys.executable, '-c', code],
                             preexec_fn=process._die_with_parent,
                             capture_output=True, text=True, check=True,
                             stdin=subprocess.DEVNULL).stdout
        self.assertEqual(str(int(signal.SIGKILL)), out.strip())


class ResizeTestCase(QemuImgTestCase):

    def test_grow(self):
        for kind, fmt in (('qcow2', 'qcow2'), ('raw', 'raw')):
            path = self.make(kind)
            qemu_convert.resize_image(path, 2 * SIZE, fmt)
            self.assertEqual(2 * SIZE, self.info(path, fmt)['virtual-size'])

    def test_shrink_refused(self):
        path = self.make('qcow2')
        e = self.assertRaises(exception.ImageConvertFailed,
                              qemu_convert.resize_image, path, SIZE // 2,
                              'qcow2')
        self.assertIn('shrink', str(e))
        self.assertEqual(SIZE, self.info(path, 'qcow2')['virtual-size'])

    def test_hostile_not_resized(self):
        path = self.make('qcow2-backing-file')
        self.assertRaises(exception.InvalidImage, qemu_convert.resize_image,
                          path, 2 * SIZE, 'qcow2')
        self.assertEqual(SIZE, self.info(path, 'qcow2')['virtual-size'])


class VersionTestCase(QemuImgTestCase):

    def test_version(self):
        process._qemu_img_version = None
        self.addCleanup(setattr, process, '_qemu_img_version', None)
        version = process.get_qemu_img_version()
        self.assertGreaterEqual(version, [2, 10])
        process.check_qemu_img_version('2.10')
        self.assertRaises(exception.OperationNotSupported,
                          process.check_qemu_img_version, '999.0')
