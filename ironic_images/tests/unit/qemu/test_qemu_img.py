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

"""Unit tests of ironic_images.qemu.info and qemu.convert (qemu-img mocked)."""

import errno
import json
import os
from unittest import mock

import fixtures
from oslo_concurrency import processutils

from ironic_images import exception
from ironic_images.formats import inspection
from ironic_images.formats import names as formats
from ironic_images.qemu import convert as qemu_convert
from ironic_images.qemu import info as qemu_info
from ironic_images.qemu import process
from ironic_images.tests import base
from ironic_images.tests.functional import images

MiB = 1024 * 1024


def info_json(fmt='qcow2', **extra):
    """The JSON qemu-img info prints, with ``extra`` keys added."""
    details = {'virtual-size': 4 * MiB, 'filename': 'img', 'format': fmt,
               'actual-size': 200704, 'dirty-flag': False}
    if fmt == 'qcow2':
        details['format-specific'] = {
            'type': 'qcow2', 'data': {'compat': '1.1', 'corrupt': False}}
    details.update(extra)
    return json.dumps(details)


def vmdk_json(create_type):
    return info_json('vmdk', **{'format-specific': {
        'type': 'vmdk', 'data': {'create-type': create_type,
                                 'extents': []}}})


def failure(stderr, exit_code=1):
    return processutils.ProcessExecutionError(
        stdout='', stderr=stderr, exit_code=exit_code, cmd='qemu-img')


class Detected(object):
    def __init__(self, fmt):
        self.format = fmt


def write_qcow2(path, **kwargs):
    """A qcow2 header the format inspector reads (no tables follow)."""
    data = bytearray(MiB)
    header = images.qcow2_header(4 * MiB, **kwargs)
    data[:len(header)] = header
    with open(path, 'wb') as f:
        f.write(data)


class QemuImgTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.execute = self.useFixture(fixtures.MockPatch(
            'oslo_concurrency.processutils.execute')).mock
        qemu_convert._DIRECT_IO_ANSWERS.clear()
        self.addCleanup(qemu_convert._DIRECT_IO_ANSWERS.clear)
        self.source = os.path.join(self.images_dir, 'source.qcow2')
        write_qcow2(self.source)
        self.dest = os.path.join(self.images_dir, 'dest.raw')

    def listing(self):
        return sorted(os.listdir(self.images_dir))


class FormatNamesTestCase(base.TestCase):

    def test_fixup(self):
        self.assertEqual('vpc', formats.qemu_name('vhd'))
        self.assertEqual('raw', formats.qemu_name('iso'))
        self.assertEqual('raw', formats.qemu_name('gpt'))
        self.assertEqual('parallels', formats.qemu_name('ploop'))
        self.assertEqual('qcow2', formats.qemu_name('qcow2'))
        self.assertEqual('vhdx', formats.qemu_name('vhdx'))

    def test_from_qemu(self):
        self.assertEqual('vhd', formats.from_qemu_name('vpc'))
        self.assertEqual('ploop',
                         formats.from_qemu_name('parallels'))
        # Not Cinder's inverted map: raw images are not called ISOs.
        self.assertEqual('raw', formats.from_qemu_name('raw'))
        self.assertEqual('vmdk', formats.from_qemu_name('vmdk'))


class ModulesTestCase(base.TestCase):

    def test_public_names_at_the_face(self):
        from ironic_images import image_utils
        self.assertIs(qemu_convert.convert_image, image_utils.convert_image)
        self.assertIs(qemu_convert.resize_image, image_utils.resize_image)
        self.assertIs(qemu_info.qemu_img_info, image_utils.qemu_img_info)
        self.assertIs(process.get_qemu_img_version,
                      image_utils.get_qemu_img_version)


class InfoTestCase(QemuImgTestCase):

    def test_command_and_limits(self):
        self.config(memory_limit_mb=512, cpu_time_limit_s=7,
                    group='image_convert')
        self.execute.return_value = (info_json(), '')
        info = qemu_info.qemu_img_info('/img', 'qcow2')
        self.assertEqual(4 * MiB, info.virtual_size)
        self.assertEqual('qcow2', info.file_format)
        args, kwargs = self.execute.call_args
        self.assertEqual(('qemu-img', 'info', '-f', 'qcow2',
                          '--output=json', '--force-share', '/img'), args)
        limits = kwargs['prlimit']
        self.assertEqual(512 * MiB, limits.address_space)
        self.assertEqual(7, limits.cpu_time)
        self.assertEqual('C', kwargs['env_variables']['LC_ALL'])
        self.assertEqual('3', kwargs['env_variables']['MALLOC_ARENA_MAX'])
        self.assertEqual(os.environ['PATH'], kwargs['env_variables']['PATH'])

    def test_relative_path_made_absolute(self):
        # qemu-img would parse "json:{...}" or "nbd:..." as what to open.
        self.execute.return_value = (info_json(), '')
        name = 'json:{"driver": "file", "filename": "/etc/shadow"}'
        qemu_info.qemu_img_info(name, 'qcow2')
        self.assertEqual(os.path.join(os.getcwd(), name),
                         self.execute.call_args[0][-1])

    def test_glance_name_translated(self):
        self.execute.return_value = (info_json('vpc'), '')
        qemu_info.qemu_img_info('/img', 'vhd')
        self.assertIn('vpc', self.execute.call_args[0])

    def test_format_required(self):
        for fmt in (None, ''):
            self.assertRaises(exception.ImageUnacceptable,
                              qemu_info.qemu_img_info, '/img', fmt)
        self.execute.assert_not_called()

    def test_backing_file_refused(self):
        self.execute.return_value = (info_json(**{
            'backing-filename': '/etc/shadow',
            'full-backing-filename': '/etc/shadow'}), '')
        e = self.assertRaises(exception.InvalidImage, qemu_info.qemu_img_info,
                              '/img', 'qcow2', image_href='http://h/i')
        self.assertIn('backing_file check failed', str(e))
        self.assertIn('http://h/i', str(e))

    def test_data_file_refused(self):
        self.execute.return_value = (info_json(**{'format-specific': {
            'type': 'qcow2', 'data': {'data-file': '/dev/sda',
                                      'data-file-raw': False}}}), '')
        e = self.assertRaises(exception.InvalidImage, qemu_info.qemu_img_info,
                              '/img', 'qcow2')
        self.assertIn('data_file check failed', str(e))

    def test_vmdk_create_types(self):
        self.execute.return_value = (vmdk_json('streamOptimized'), '')
        qemu_info.qemu_img_info('/img', 'vmdk')
        self.execute.return_value = (vmdk_json('monolithicFlat'), '')
        e = self.assertRaises(exception.InvalidImage, qemu_info.qemu_img_info,
                              '/img', 'vmdk')
        self.assertIn('vmdk_allowed_types check failed', str(e))
        self.assertIn('monolithicFlat', str(e))
        self.config(vmdk_allowed_types=['monolithicFlat'],
                    group='image_format')
        qemu_info.qemu_img_info('/img', 'vmdk')

    def test_vmdk_without_create_type_refused(self):
        self.execute.return_value = (info_json('vmdk'), '')
        self.assertRaises(exception.InvalidImage, qemu_info.qemu_img_info,
                          '/img', 'vmdk')

    def test_format_mismatch_refused(self):
        self.execute.return_value = (info_json('raw'), '')
        e = self.assertRaises(exception.InvalidImage, qemu_info.qemu_img_info,
                              '/img', 'qcow2')
        self.assertIn('format_match check failed', str(e))

    def test_failure_reason_masked(self):
        self.execute.side_effect = failure(
            "qemu-img: Could not open 'https://user:s3cret@host/i?sig=abc': "
            "Image is not in qcow2 format")
        e = self.assertRaises(exception.ImageUnacceptable,
                              qemu_info.qemu_img_info, '/img', 'qcow2')
        self.assertNotIsInstance(e, exception.InvalidImage)
        self.assertIn('Image is not in qcow2 format', str(e))
        self.assertNotIn('s3cret', str(e))
        self.assertNotIn('abc', str(e))

    def test_limit_hit(self):
        self.execute.side_effect = failure('', exit_code=-24)
        e = self.assertRaises(exception.ImageUnacceptable,
                              qemu_info.qemu_img_info, '/img', 'qcow2')
        self.assertIn('signal 24', str(e))

    def test_missing_binary(self):
        self.execute.side_effect = FileNotFoundError(
            errno.ENOENT, 'No such file', 'qemu-img')
        self.assertRaises(exception.ImageUnacceptable,
                          qemu_info.qemu_img_info, '/img', 'qcow2')

    def test_unparsable_output(self):
        self.execute.return_value = ('not json', '')
        e = self.assertRaises(exception.ImageUnacceptable,
                              qemu_info.qemu_img_info, '/img', 'qcow2')
        self.assertIn('cannot parse', str(e))


class ConvertTestCase(QemuImgTestCase):

    def setUp(self):
        super().setUp()
        # The source goes through the real inspector (the safety gate);
        # the output is what each test says it is.
        self.real_inspect = inspection.inspect_file
        self.inspect = self.useFixture(fixtures.MockPatch(
            'ironic_images.formats.inspection.inspect_file',
            return_value=Detected('raw'))).mock
        self.inspect.side_effect = lambda path, image_href=None: (
            self.real_inspect(path, image_href) if path == self.source
            else mock.DEFAULT)
        self.useFixture(fixtures.MockPatch('time.sleep'))
        self.converts = []
        self.convert_outcomes = []
        self.execute.side_effect = self.fake_execute

    def fake_execute(self, *args, **kwargs):
        if args[1] == 'info':
            return info_json(args[3]), ''
        self.converts.append((args, kwargs))
        if self.convert_outcomes:
            outcome = self.convert_outcomes.pop(0)
            if outcome is not None:
                raise outcome
        with open(args[-1], 'wb') as f:
            f.write(b'converted')
        return '', ''

    def convert(self, out_format='raw', src_format='qcow2', **kwargs):
        qemu_convert.convert_image(self.source, self.dest, out_format,
                                   src_format, **kwargs)

    def test_success(self):
        self.convert()
        self.assertEqual(['dest.raw', 'source.qcow2'], self.listing())
        with open(self.dest, 'rb') as f:
            self.assertEqual(b'converted', f.read())
        (args, kwargs), = self.converts
        part = args[-1]
        self.assertEqual(self.images_dir, os.path.dirname(part))
        self.assertTrue(os.path.basename(part).startswith('.dest.raw.'))
        self.assertEqual(('qemu-img', 'convert', '-f', 'qcow2', '-O', 'raw',
                          '-W', '-m', '16', '-S', '4k', '-t', 'none',
                          self.source, part), args)
        self.inspect.assert_called_with(part, image_href=self.source)

    def test_source_checked_first(self):
        self.convert()
        first = self.execute.call_args_list[0][0]
        self.assertEqual(('qemu-img', 'info', '-f', 'qcow2'), first[:4])

    def test_source_info_given(self):
        self.convert(source_info=mock.sentinel.info)
        self.assertEqual(1, self.execute.call_count)

    def test_hostile_source_never_converted(self):
        self.execute.side_effect = None
        self.execute.return_value = (info_json(**{
            'backing-filename': 'base'}), '')
        self.assertRaises(exception.InvalidImage, self.convert)
        self.assertEqual(1, self.execute.call_count)
        self.assertEqual(['source.qcow2'], self.listing())

    def test_limits_memory_only(self):
        self.config(memory_limit_mb=300, group='image_convert')
        self.convert()
        limits = self.converts[0][1]['prlimit']
        self.assertEqual(300 * MiB, limits.address_space)
        self.assertIsNone(limits.cpu_time)

    def test_coroutines_and_subformat(self):
        self.config(coroutines=4, group='image_convert')
        self.inspect.return_value = Detected('vmdk')
        self.convert('vmdk', out_subformat='streamOptimized')
        args = self.converts[0][0]
        self.assertEqual(['-m', '4'], list(args[7:9]))
        self.assertEqual(['-o', 'subformat=streamOptimized'],
                         list(args[11:13]))

    def test_vhd_is_vpc(self):
        self.inspect.return_value = Detected('vhd')
        self.convert('vhd', src_format='vhd', source_info=mock.sentinel.info)
        args = self.converts[0][0]
        self.assertEqual(['-f', 'vpc', '-O', 'vpc'], list(args[2:6]))

    def test_fixed_vhd_detected_as_raw(self):
        self.inspect.return_value = Detected('raw')
        self.convert('vhd', out_subformat='fixed')
        self.assertTrue(os.path.exists(self.dest))

    def test_raw_output_may_be_gpt_or_iso(self):
        for fmt in ('gpt', 'iso'):
            self.inspect.return_value = Detected(fmt)
            self.convert()

    def test_no_direct_io(self):
        with mock.patch.object(qemu_convert, '_supports_direct_io',
                               autospec=True, return_value=False):
            self.convert()
        self.assertNotIn('-t', self.converts[0][0])

    def test_source_format_required(self):
        for fmt in (None, ''):
            e = self.assertRaises(exception.ImageConvertFailed,
                                  self.convert, src_format=fmt)
            self.assertIn('source format must be given', str(e))
        self.execute.assert_not_called()
        self.assertEqual(['source.qcow2'], self.listing())

    def test_unsupported_formats(self):
        for out, sub in (('vdi', None), ('qed', None), ('iso', None),
                         ('raw', 'fixed'), ('vmdk', 'monolithicFlat'),
                         ('vmdk', 'twoGbMaxExtentSparse')):
            self.assertRaises(exception.ImageConvertFailed, self.convert,
                              out, out_subformat=sub)
        self.execute.assert_not_called()

    def test_wrong_output_format(self):
        self.inspect.return_value = Detected('qcow2')
        e = self.assertRaises(exception.ImageConvertFailed, self.convert)
        self.assertIn('detected as qcow2, not raw', str(e))
        self.assertEqual(['source.qcow2'], self.listing())

    def test_output_of_two_formats(self):
        detected = Detected(None)
        detected.matches = ('iso', 'qcow2')
        self.inspect.return_value = detected
        e = self.assertRaises(exception.ImageConvertFailed, self.convert)
        self.assertIn('detected as iso+qcow2, not raw', str(e))
        self.assertEqual(['source.qcow2'], self.listing())

    def test_output_inspection_fails(self):
        def inspect(path, image_href=None):
            if path == self.source:
                return self.real_inspect(path, image_href)
            raise exception.InvalidImage(image_href='x',
                                         reason='safety check failed')

        self.inspect.side_effect = inspect
        e = self.assertRaises(exception.ImageConvertFailed, self.convert)
        self.assertIn('safety check failed', str(e))
        self.assertEqual(['source.qcow2'], self.listing())

    def test_failure_keeps_existing_dest(self):
        with open(self.dest, 'wb') as f:
            f.write(b'old')
        self.convert_outcomes = [failure('qemu-img: error while writing '
                                         'sector 0: No space left on device')]
        e = self.assertRaises(exception.ImageConvertFailed, self.convert)
        self.assertIn('No space left on device', str(e))
        self.assertEqual(['dest.raw', 'source.qcow2'], self.listing())
        with open(self.dest, 'rb') as f:
            self.assertEqual(b'old', f.read())
        self.assertEqual(1, len(self.converts))

    def test_retry_on_enomem(self):
        self.convert_outcomes = [
            failure('qemu_memalign: failed to allocate 2097152 bytes: '
                    'Cannot allocate memory', exit_code=-6)]
        self.convert()
        self.assertEqual(2, len(self.converts))
        self.assertEqual(['dest.raw', 'source.qcow2'], self.listing())

    def test_retry_on_eagain(self):
        self.convert_outcomes = [
            failure('qemu: qemu_thread_create: Resource temporarily '
                    'unavailable', exit_code=-6),
            OSError(errno.EAGAIN, 'Resource temporarily unavailable')]
        self.convert()
        self.assertEqual(3, len(self.converts))

    def test_retries_exhausted(self):
        self.config(attempts=2, group='image_convert')
        self.convert_outcomes = [failure('Cannot allocate memory')] * 3
        e = self.assertRaises(exception.ImageConvertFailed, self.convert)
        self.assertIn('Cannot allocate memory', str(e))
        self.assertEqual(2, len(self.converts))
        self.assertEqual(['source.qcow2'], self.listing())

    def test_no_retry_on_other_errors(self):
        self.convert_outcomes = [failure('Invalid argument')]
        self.assertRaises(exception.ImageConvertFailed, self.convert)
        self.assertEqual(1, len(self.converts))

    def test_dest_directory_missing(self):
        e = self.assertRaises(
            exception.ImageConvertFailed, qemu_convert.convert_image,
            self.source, os.path.join(self.images_dir, 'no', 'dest'), 'raw',
            'qcow2')
        self.assertIn('its directory does not exist', str(e))
        self.assertEqual(['source.qcow2'], self.listing())

    def test_hostile_source_never_reaches_qemu_img(self):
        # A backing file the format inspector sees: refused before any
        # qemu-img process opens the file (qemu-img info would follow it).
        write_qcow2(self.source, backing_offset=512)
        e = self.assertRaises(exception.InvalidImage, self.convert)
        self.assertIn('backing_file check failed', str(e))
        self.execute.assert_not_called()
        self.assertEqual(['source.qcow2'], self.listing())

    def test_source_of_another_format_refused(self):
        # Declared qcow2, detected raw: qemu-img -f qcow2 would never run
        # on what the inspector could not vouch for.
        with open(self.source, 'wb') as f:
            f.write(b'not an image header' * 100)
        e = self.assertRaises(exception.ImageUnacceptable, self.convert)
        self.assertIn('format_match check failed', str(e))
        self.execute.assert_not_called()

    def test_source_format_not_permitted(self):
        self.config(permitted_formats=['raw'], group='image_format')
        e = self.assertRaises(exception.ImageUnacceptable, self.convert)
        self.assertIn('permitted_formats check failed', str(e))
        self.execute.assert_not_called()

    def test_raw_source_read_as_raw_whatever_it_holds(self):
        # -f raw never interprets the data: a raw volume whose guest wrote
        # a qcow2 header is converted as the raw disk it is.
        self.convert(src_format='raw')
        args = self.converts[0][0]
        self.assertEqual(['-f', 'raw'], list(args[2:4]))

    def test_interrupted_cleans_up(self):
        self.convert_outcomes = [KeyboardInterrupt()]
        self.assertRaises(KeyboardInterrupt, self.convert)
        self.assertEqual(['source.qcow2'], self.listing())


class DirectIOTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        qemu_convert._DIRECT_IO_ANSWERS.clear()
        self.addCleanup(qemu_convert._DIRECT_IO_ANSWERS.clear)

    def test_probe_leaves_nothing(self):
        qemu_convert._supports_direct_io(self.images_dir)
        self.assertEqual([], os.listdir(self.images_dir))

    def test_einval_means_no(self):
        with mock.patch.object(qemu_convert.os, 'open', autospec=True,
                               side_effect=OSError(errno.EINVAL, 'x')):
            self.assertFalse(qemu_convert._supports_direct_io(self.images_dir))
        self.assertEqual([], os.listdir(self.images_dir))

    def test_other_failures_are_probed_again(self):
        # No space (or no permission) now says nothing of the file system.
        with mock.patch.object(qemu_convert.os, 'open', autospec=True,
                               side_effect=OSError(errno.ENOSPC, 'x')):
            self.assertFalse(qemu_convert._supports_direct_io(self.images_dir))
        with mock.patch.object(qemu_convert.os, 'open', autospec=True,
                               side_effect=OSError(errno.EINVAL, 'x')) as op:
            self.assertFalse(qemu_convert._supports_direct_io(self.images_dir))
        self.assertEqual(1, op.call_count)
        # EINVAL is the file system's answer: kept, not probed again.
        with mock.patch.object(qemu_convert.os, 'open', autospec=True) as op:
            self.assertFalse(qemu_convert._supports_direct_io(self.images_dir))
        op.assert_not_called()

    def test_probed_once_per_directory(self):
        with mock.patch.object(qemu_convert.fileutils, 'part_path',
                               wraps=qemu_convert.fileutils.part_path) as part:
            qemu_convert._supports_direct_io(self.images_dir)
            qemu_convert._supports_direct_io(self.images_dir)
        self.assertEqual(1, part.call_count)


class ResizeTestCase(QemuImgTestCase):

    def test_resize(self):
        self.execute.side_effect = [(info_json(), ''), ('', '')]
        qemu_convert.resize_image(self.source, 8 * MiB, 'qcow2')
        args, kwargs = self.execute.call_args
        self.assertEqual(('qemu-img', 'resize', '-f', 'qcow2', self.source,
                          str(8 * MiB)), args)
        self.assertEqual(2048 * MiB, kwargs['prlimit'].address_space)

    def test_bad_sizes(self):
        for size in (0, -1, 1.5, '1G', True, None):
            self.assertRaises(exception.ImageConvertFailed,
                              qemu_convert.resize_image, '/img', size, 'qcow2')
        self.execute.assert_not_called()

    def test_hostile_image_not_resized(self):
        self.execute.return_value = (info_json(**{
            'backing-filename': 'base'}), '')
        self.assertRaises(exception.InvalidImage, qemu_convert.resize_image,
                          self.source, 8 * MiB, 'qcow2')
        self.assertEqual(1, self.execute.call_count)

    def test_hostile_image_never_reaches_qemu_img(self):
        write_qcow2(self.source, backing_offset=512)
        self.assertRaises(exception.InvalidImage, qemu_convert.resize_image,
                          self.source, 8 * MiB, 'qcow2')
        self.execute.assert_not_called()

    def test_failure(self):
        self.execute.side_effect = [
            (info_json(), ''),
            failure("qemu-img: Use the --shrink option to perform a shrink "
                    "operation.")]
        e = self.assertRaises(exception.ImageConvertFailed,
                              qemu_convert.resize_image, self.source, MiB,
                              'qcow2')
        self.assertIn('--shrink', str(e))


class DieWithParentTestCase(base.TestCase):

    def test_child_loads_no_library(self):
        # _die_with_parent runs in the child between fork and exec: a
        # dlopen() there can deadlock on a loader lock another thread of
        # the parent held at fork time. prctl is looked up beforehand.
        with mock.patch.object(process.ctypes, 'CDLL', autospec=True,
                               side_effect=AssertionError('dlopen in the '
                                                          'child')), \
                mock.patch.object(process, '_prctl', autospec=True) as prctl:
            process._die_with_parent()
        prctl.assert_called_once_with(1, process.signal.SIGKILL)

    def test_without_prctl(self):
        with mock.patch.object(process, '_prctl', None):
            process._die_with_parent()


class VersionTestCase(QemuImgTestCase):

    def setUp(self):
        super().setUp()
        process._qemu_img_version = None
        self.addCleanup(setattr, process, '_qemu_img_version', None)

    def test_parsed_and_cached(self):
        self.execute.return_value = (
            'qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7)\nCopyright', '')
        self.assertEqual([7, 2, 22], process.get_qemu_img_version())
        self.assertEqual([7, 2, 22], process.get_qemu_img_version())
        self.assertEqual(1, self.execute.call_count)

    def test_missing(self):
        self.execute.side_effect = FileNotFoundError(errno.ENOENT, 'x')
        self.assertIsNone(process.get_qemu_img_version())
        self.execute.side_effect = None
        self.execute.return_value = ('something else', '')
        self.assertIsNone(process.get_qemu_img_version())
        self.assertRaises(exception.OperationNotSupported,
                          process.check_qemu_img_version, '2.10')

    def test_check(self):
        self.execute.return_value = ('qemu-img version 7.2.22\n', '')
        process.check_qemu_img_version('2.10')
        process.check_qemu_img_version('7.2.22')
        e = self.assertRaises(exception.OperationNotSupported,
                              process.check_qemu_img_version, '8.0')
        self.assertIn('8.0', str(e))
        self.assertIn('7.2.22', str(e))
