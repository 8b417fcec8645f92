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

"""Format detection and the safety gate on images built in memory.

The images are the structures the inspectors read (headers, descriptors,
partition tables), built by ``tests/functional/images.py``; the real
images made by qemu-img are in ``tests/functional/test_inspection.py``.
"""

import json
import os
import random
import struct
from unittest import mock

import hypothesis
from hypothesis import strategies as st
from oslo_utils import imageutils
from oslo_utils.imageutils import format_inspector
from oslo_utils import units

from ironic_images import exception
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.qemu import info as qemu_info
from ironic_images.tests import base
from ironic_images.tests.functional import images

MiB = units.Mi
SIZE = 4 * MiB
HREF = 'http://user:secret@example.com/image'


def _disk(blocks, size=SIZE):
    data = bytearray(size)
    for offset, chunk in blocks:
        data[offset:offset + len(chunk)] = chunk
    return bytes(data)


def raw(size=SIZE):
    return _disk([(64 * units.Ki, b'\xab' * 4096)], size)


def qcow2(size=SIZE, **kwargs):
    return _disk([(0, images.qcow2_header(8 * units.Gi, **kwargs))], size)


def gpt(size=SIZE):
    return _disk(images.gpt_structures(size // 512), size)


def iso(size=SIZE, extra=()):
    return _disk(images.iso_descriptors(size) + list(extra), size)


def vmdk(size=SIZE, **kwargs):
    return _disk([(0, images.vmdk_sparse(**kwargs))], size)


def descriptor_file(create_type='monolithicFlat', extent='disk-flat.vmdk'):
    return images.vmdk_descriptor(create_type, extent, 2048).encode()


def stream(data, chunk_size=4 * MiB, size=None):
    inspector = inspection.StreamInspector(HREF)
    view = memoryview(data)
    for offset in range(0, len(data), chunk_size):
        inspector.update(view[offset:offset + chunk_size])
    inspector.finish(size=size)
    return inspector.result()


class StreamInspectorTest(base.TestCase):

    def test_raw(self):
        detected = stream(raw())
        self.assertEqual('raw', detected.format)
        self.assertEqual(('raw',), detected.matches)
        self.assertEqual(SIZE, detected.virtual_size)
        self.assertEqual(SIZE, detected.data_size)
        self.assertIsInstance(detected.inspector,
                              format_inspector.RawFileInspector)

    def test_qcow2(self):
        detected = stream(qcow2())
        self.assertEqual('qcow2', detected.format)
        self.assertEqual(8 * units.Gi, detected.virtual_size)
        self.assertIsInstance(detected.inspector,
                              format_inspector.QcowInspector)
        self.assertEqual({}, detected.errors)

    def test_gpt_size_is_the_data_length(self):
        detected = stream(gpt())
        self.assertEqual('gpt', detected.format)
        self.assertEqual(SIZE, detected.virtual_size)

    def test_iso_with_gpt_is_iso(self):
        data = iso(extra=[b for b in images.gpt_structures(SIZE // 512, 64)
                          if b[0] < images.ISO_PVD_OFFSET])
        detected = stream(data)
        self.assertEqual(('gpt', 'iso'), detected.matches)
        self.assertEqual('iso', detected.format)
        self.assertIsInstance(detected.inspector,
                              format_inspector.ISOInspector)
        self.assertEqual(SIZE, detected.virtual_size)

    def test_iso_with_qcow2_has_no_format(self):
        detected = stream(iso(extra=[(0, images.qcow2_header(SIZE))]))
        self.assertEqual(('iso', 'qcow2'), detected.matches)
        self.assertIsNone(detected.format)
        self.assertIsNone(detected.inspector)
        self.assertIsNone(detected.virtual_size)

    def test_complete_after_the_head(self):
        inspector = inspection.StreamInspector()
        inspector.update(raw()[:inspection.HEAD_SIZE - 1])
        self.assertFalse(inspector.complete)
        inspector.update(b'\0')
        self.assertTrue(inspector.complete)

    def test_update_after_complete_only_counts(self):
        inspector = inspection.StreamInspector()
        inspector.update(qcow2(size=inspection.HEAD_SIZE))
        self.assertTrue(inspector.complete)
        with mock.patch.object(format_inspector.FileInspector, 'eat_chunk',
                               autospec=True) as eat:
            for _ in range(3):
                inspector.update(bytes(4 * MiB))
        eat.assert_not_called()
        self.assertEqual(inspection.HEAD_SIZE + 12 * MiB, inspector.position)
        inspector.finish()
        self.assertEqual('qcow2', inspector.result().format)

    def test_finish_size_for_a_stream_cut_short(self):
        inspector = inspection.StreamInspector()
        inspector.update(raw(size=inspection.HEAD_SIZE))
        self.assertTrue(inspector.complete)
        inspector.finish(size=10 * units.Gi)
        detected = inspector.result()
        self.assertEqual('raw', detected.format)
        self.assertEqual(10 * units.Gi, detected.virtual_size)

    def test_small_image_decided_at_finish(self):
        inspector = inspection.StreamInspector()
        inspector.update(qcow2(size=4096))
        self.assertFalse(inspector.complete)
        inspector.finish()
        self.assertTrue(inspector.complete)
        self.assertEqual('qcow2', inspector.result().format)

    def test_empty(self):
        detected = stream(b'')
        self.assertEqual('raw', detected.format)
        self.assertEqual(0, detected.virtual_size)

    def test_result_before_finish(self):
        inspector = inspection.StreamInspector(HREF)
        inspector.update(b'QFI')
        e = self.assertRaises(exception.ImageUnacceptable, inspector.result)
        self.assertNotIn('secret', str(e))

    def test_update_after_finish(self):
        inspector = inspection.StreamInspector()
        inspector.finish()
        inspector.finish()  # a second call changes nothing
        self.assertRaises(exception.ImageUnacceptable, inspector.update,
                          b'data')

    def test_reset(self):
        inspector = inspection.StreamInspector()
        inspector.update(qcow2())
        inspector.reset()
        self.assertFalse(inspector.complete)
        self.assertEqual(0, inspector.position)
        inspector.update(raw())
        inspector.finish()
        detected = inspector.result()
        self.assertEqual('raw', detected.format)
        self.assertEqual(SIZE, detected.virtual_size)

    def test_memoryview_of_other_item_size(self):
        data = qcow2()
        inspector = inspection.StreamInspector()
        inspector.update(memoryview(data).cast('I'))
        inspector.finish()
        self.assertEqual(len(data), inspector.position)
        self.assertEqual('qcow2', inspector.result().format)

    def test_caller_buffer_reused(self):
        # inspect_file reads into one buffer: the inspector must copy.
        data = qcow2()
        buf = bytearray(511)
        inspector = inspection.StreamInspector()
        for offset in range(0, len(data), 511):
            piece = data[offset:offset + 511]
            buf[:len(piece)] = piece
            inspector.update(memoryview(buf)[:len(piece)])
        inspector.finish()
        self.assertEqual('qcow2', inspector.result().format)
        self.assertEqual(8 * units.Gi, inspector.result().virtual_size)

    def test_vmdk_footer_needs_the_end(self):
        inspector = inspection.StreamInspector()
        inspector.update(vmdk(gd_at_end=True))
        self.assertFalse(inspector.complete)
        inspector.finish()
        detected = inspector.result()
        self.assertEqual('vmdk', detected.format)
        self.assertEqual('monolithicsparse', detected.vmdk_create_type)

    def test_waiting_for_a_footer_keeps_only_the_tail(self):
        inspector = inspection.StreamInspector()
        inspector.update(vmdk(size=2 * MiB, gd_at_end=True))
        self.assertTrue(inspector.waits_for_end)
        with mock.patch.object(format_inspector.FileInspector, 'eat_chunk',
                               autospec=True) as eat:
            for _ in range(4):
                inspector.update(os.urandom(MiB + 1))
        eat.assert_not_called()
        inspector.update(vmdk_footer())
        inspector.finish()
        detected = inspector.result()
        self.assertEqual(vmdk_footer(),
                         detected.inspector.region('footer').data)
        self.config(permitted_formats=['vmdk'], group='image_format')
        self.assertEqual('vmdk', gate.check_image(detected, HREF))

    def test_parse_error_of_a_match_is_kept(self):
        detected = stream(vmdk(version=7))
        self.assertEqual('vmdk', detected.format)
        self.assertIn('vmdk', detected.errors)

    def test_parse_error_of_no_match_is_dropped(self):
        detected = stream(raw())
        self.assertEqual({}, detected.errors)

    def test_descriptor_file(self):
        detected = stream(descriptor_file())
        self.assertEqual('vmdk', detected.format)
        self.assertEqual('monolithicflat', detected.vmdk_create_type)
        self.assertIsNone(detected.virtual_size)

    def test_sparse_create_type_in_a_descriptor_file(self):
        # oslo's VMDKInspector.virtual_size raises KeyError('header') here.
        detected = stream(descriptor_file('monolithicSparse'))
        self.assertEqual('vmdk', detected.format)
        self.assertIsNone(detected.virtual_size)

    def test_descriptor_text_read_up_to_one_mib(self):
        # qemu-img reads up to 1 MiB of a descriptor file, so does the
        # inspector, whatever the chunks: an extent line at 900 KiB is seen.
        text = descriptor_file('monolithicSparse').ljust(900 * units.Ki,
                                                         b'\n')
        text += b'RW 1 FLAT "/etc/hostname" 0\n'
        for chunk_size in (511, 4096, 4 * MiB):
            detected = stream(text, chunk_size)
            self.assertEqual('vmdk', detected.format)
            self.assertIn('/etc/hostname', detected.inspector.desc_text)

    def test_same_verdict_whatever_the_chunks(self):
        descriptor = descriptor_file('monolithicSparse').ljust(
            300 * units.Ki, b'\n') + b'RW 1 FLAT "/etc/passwd" 0\n'
        for make in (raw, qcow2, gpt, iso, vmdk,
                     lambda: vmdk(gd_at_end=True),
                     lambda: iso(extra=[(0, images.qcow2_header(1))]),
                     lambda: descriptor):
            data = make()
            reference = stream(data, 4 * MiB)
            for chunk_size in (511, 4096, 65537, 3 * MiB):
                detected = stream(data, chunk_size)
                self.assertEqual(
                    (reference.format, reference.matches,
                     reference.virtual_size, reference.errors),
                    (detected.format, detected.matches,
                     detected.virtual_size, detected.errors))
                if reference.format == 'vmdk':
                    self.assertEqual(reference.inspector.desc_text,
                                     detected.inspector.desc_text)

    def test_one_byte_chunks(self):
        for data in (qcow2(size=8192), iso(size=64 * units.Ki),
                     descriptor_file(), vmdk(size=16 * units.Ki)):
            self.assertEqual(stream(data).matches,
                             stream(data, 1).matches)


class HostileInputTest(base.TestCase):
    """Broken and random data: a verdict or one of our exceptions."""

    def _verdict(self, data, chunk_size=65537):
        detected = stream(data, chunk_size)
        try:
            return gate.check_image(detected, HREF)
        except exception.ImageUnacceptable as e:
            self.assertIn('check', e.kwargs)
            self.assertNotIn('secret', str(e))
            return e.kwargs['check']

    def test_truncated_headers(self):
        for data in (images.qcow2_header(SIZE), images.vmdk_sparse(),
                     iso(size=64 * units.Ki)[:33 * units.Ki]):
            for length in (0, 1, 3, 4, 31, 64, 100, 511, 512, 1000):
                self._verdict(data[:length])

    def test_truncated_vmdk_is_refused(self):
        self.assertEqual('complete',
                         self._verdict(images.vmdk_sparse()[:600]))

    def test_vmdk_descriptor_size_is_capped(self):
        # A header asking for a 4 GiB descriptor keeps only 1 MiB.
        data = bytearray(vmdk(size=3 * MiB))
        data[36:44] = (8 * 1024 * 1024).to_bytes(8, 'little')
        detected = stream(bytes(data))
        self.assertLess(len(detected.inspector.region('descriptor').data),
                        MiB)

    def test_vhdx_pointing_past_the_end(self):
        data = bytearray(SIZE)
        data[0:8] = b'vhdxfile'
        # A region table with one metadata entry at 1 TiB.
        table = bytearray(64 * units.Ki)
        table[0:16] = (0x69676572).to_bytes(4, 'little') + bytes(4) + (
            1).to_bytes(4, 'little') + bytes(4)
        guid = bytes.fromhex('06A27C8B90479A4BB8FE575F050F886E')
        table[16:48] = guid + (units.Ti).to_bytes(8, 'little') + (
            MiB).to_bytes(4, 'little') + bytes(4)
        data[192 * units.Ki:256 * units.Ki] = table
        self.assertEqual('complete', self._verdict(bytes(data)))

    @hypothesis.settings(max_examples=200, deadline=None, derandomize=True)
    @hypothesis.given(st.binary(min_size=0, max_size=4096),
                      st.integers(min_value=0, max_value=9))
    def test_random_bytes_over_headers(self, noise, which):
        # Valid headers with random bytes over them, and random data.
        starts = [qcow2(size=8192), vmdk(size=16 * units.Ki),
                  iso(size=40 * units.Ki), gpt(size=40 * units.Ki),
                  descriptor_file(), images.qcow2_header(1),
                  b'vhdxfile' + bytes(300 * units.Ki),
                  b'LUKS\xba\xbe\x00\x01' + bytes(600),
                  b'conectix' + bytes(600), b'']
        data = bytearray(starts[which])
        offset = random.Random(len(noise)).randrange(0, len(data) + 1)
        data[offset:offset + len(noise)] = noise
        self._verdict(bytes(data))

    def test_random_files(self):
        rng = random.Random(1234)
        for size in (0, 1, 511, 4096, 65536, 2 * MiB + 3):
            self._verdict(rng.randbytes(size), chunk_size=4096)

    def test_inspector_crash_is_a_parse_error(self):
        real = format_inspector.QcowInspector.region_complete

        def crash(inspector, name):
            real(inspector, name)
            raise struct.error('unpack requires a buffer of 32 bytes')

        with mock.patch.object(format_inspector.QcowInspector,
                               'region_complete', autospec=True,
                               side_effect=crash):
            detected = stream(qcow2())
        self.assertEqual('qcow2', detected.format)
        self.assertIn('unpack requires', detected.errors['qcow2'])
        self.assertEqual('parse', _check_name(detected))


def _check_name(detected):
    try:
        gate.check_image(detected, HREF)
    except exception.ImageUnacceptable as e:
        return e.kwargs['check']


class CheckImageTest(base.TestCase):

    def _refused(self, data, check, cls=exception.InvalidImage,
                 expected_format=None):
        detected = stream(data)
        e = self.assertRaises(cls, gate.check_image, detected,
                              HREF, expected_format)
        self.assertEqual(check, e.kwargs['check'])
        self.assertIn('%s check failed' % check, str(e))
        self.assertNotIn('secret', str(e))
        return e

    def _accepted(self, data, expected_format=None):
        return gate.check_image(stream(data), HREF, expected_format)

    def test_accepted(self):
        self.assertEqual('raw', self._accepted(raw()))
        self.assertEqual('qcow2', self._accepted(qcow2()))
        self.assertEqual('gpt', self._accepted(gpt()))
        self.assertEqual('iso', self._accepted(iso()))
        self.assertEqual('qcow2', self._accepted(qcow2(version=2)))

    def test_declared_raw_accepts_gpt_as_raw(self):
        self.assertEqual('raw', self._accepted(gpt(), 'raw'))
        self.assertEqual('raw', self._accepted(raw(), 'raw'))
        self.assertEqual('raw', self._accepted(raw(), 'aki'))

    def test_declared_iso_accepts_hybrid_iso(self):
        data = iso(extra=[b for b in images.gpt_structures(SIZE // 512, 64)
                          if b[0] < images.ISO_PVD_OFFSET])
        self.assertEqual('iso', self._accepted(data, 'iso'))

    def test_backing_file(self):
        self._refused(qcow2(backing_offset=0x200), 'backing_file')

    def test_data_file(self):
        self._refused(qcow2(incompatible=1 << 2), 'data_file')

    def test_unknown_qcow2_features(self):
        self._refused(qcow2(incompatible=1 << 6), 'unknown_features')

    def test_qcow_v1(self):
        self._refused(qcow2(version=1), 'unknown_features')

    def test_iso_hiding_qcow2(self):
        e = self._refused(iso(extra=[(0, images.qcow2_header(SIZE))]),
                          'single_format')
        self.assertIn('iso, qcow2', str(e))

    def test_hidden_header_refused_even_without_deep_inspection(self):
        self.config(disable_deep_inspection=True, group='image_format')
        self._refused(iso(extra=[(0, images.qcow2_header(SIZE))]),
                      'single_format')

    def test_gpt_with_bad_mbr(self):
        data = bytearray(gpt())
        data[446] = 0x42  # boot flag
        self._refused(bytes(data), 'mbr')

    def test_not_permitted(self):
        self._refused(vmdk(), 'permitted_formats', exception.ImageUnacceptable)
        self._refused(b'conectix' + bytes(SIZE), 'permitted_formats',
                      exception.ImageUnacceptable)

    def test_permitted(self):
        self.config(permitted_formats=['vmdk', 'vhd'], group='image_format')
        self.assertEqual('vmdk', self._accepted(vmdk()))
        self.assertEqual('vmdk', self._accepted(vmdk(
            create_type='streamOptimized')))
        self.assertEqual('vhd', self._accepted(b'conectix' + bytes(SIZE),
                                               'vpc'))
        self._refused(raw(), 'permitted_formats', exception.ImageUnacceptable)
        self._refused(gpt(), 'permitted_formats', exception.ImageUnacceptable)

    def test_permitted_is_not_a_raw_escape(self):
        # An InvalidImage is also an ImageUnacceptable (Cinder's class).
        self.assertTrue(issubclass(exception.InvalidImage,
                                   exception.ImageUnacceptable))

    def test_format_mismatch(self):
        self._refused(raw(), 'format_match', exception.ImageUnacceptable,
                      'qcow2')
        self._refused(qcow2(), 'format_match', exception.ImageUnacceptable,
                      'raw')
        self._refused(iso(), 'format_match', exception.ImageUnacceptable,
                      'raw')

    def test_format_mismatch_allowed(self):
        self.config(require_format_match=False, group='image_format')
        self.assertEqual('qcow2', self._accepted(qcow2(), 'raw'))

    def test_vmdk_create_type_not_allowed(self):
        self.config(permitted_formats=['vmdk'], group='image_format')
        self._refused(descriptor_file(), 'vmdk_allowed_types')
        self._refused(vmdk(create_type='twoGbMaxExtentSparse'),
                      'vmdk_allowed_types')
        self.config(vmdk_allowed_types=['monolithicSparse'],
                    group='image_format')
        self._refused(vmdk(create_type='streamOptimized'),
                      'vmdk_allowed_types')
        self.assertEqual('vmdk', self._accepted(vmdk()))

    def test_vmdk_descriptor_file_refused(self):
        self.config(permitted_formats=['vmdk'], group='image_format')
        self._refused(descriptor_file('monolithicSparse', 'other-image'),
                      'vmdk_descriptor_file')

    def test_vmdk_allowed_types_cannot_widen_oslo(self):
        self.config(permitted_formats=['vmdk'], group='image_format',
                    vmdk_allowed_types=['monolithicSparse',
                                        'twoGbMaxExtentSparse'])
        self._refused(vmdk(create_type='twoGbMaxExtentSparse'), 'descriptor')

    def test_vmdk_footer(self):
        self.config(permitted_formats=['vmdk'], group='image_format')
        self._refused(vmdk(gd_at_end=True), 'footer')

    def test_vmdk_unparsable(self):
        self.config(permitted_formats=['vmdk'], group='image_format')
        self._refused(vmdk(version=7), 'parse')

    def test_vmdk_bad_extent(self):
        self.config(permitted_formats=['vmdk'], group='image_format')
        descriptor = images.vmdk_descriptor('monolithicSparse',
                                            '/etc/passwd', 2048, 'SPARSE')
        self._refused(vmdk(descriptor=descriptor), 'descriptor')

    def test_qed_banned(self):
        data = b'QED\x00' + bytes(SIZE)
        self._refused(data, 'banned')
        self.config(permitted_formats=['qed'], group='image_format')
        self._refused(data, 'banned')
        self.config(disable_deep_inspection=True, group='image_format')
        self.assertEqual('qed', self._accepted(data))

    def test_luks_incomplete(self):
        self.config(permitted_formats=['luks'], group='image_format')
        self._refused(b'LUKS\xba\xbe\x00\x01' + bytes(100), 'complete')

    @mock.patch.object(gate.LOG, 'warning', autospec=True)
    def test_disable_deep_inspection(self, warning):
        self.config(disable_deep_inspection=True, group='image_format')
        self.assertEqual('qcow2', self._accepted(qcow2(backing_offset=512)))
        self.assertTrue(warning.called)
        self.assertNotIn('secret', str(warning.call_args))
        # Permitted formats and format match still apply.
        self._refused(vmdk(), 'permitted_formats', exception.ImageUnacceptable)
        self._refused(raw(), 'format_match', exception.ImageUnacceptable,
                      'qcow2')

    def test_disable_deep_inspection_keeps_vmdk_types(self):
        self.config(disable_deep_inspection=True, permitted_formats=['vmdk'],
                    group='image_format')
        self._refused(descriptor_file(), 'vmdk_allowed_types')

    @mock.patch.object(gate.LOG, 'error', autospec=True)
    def test_refusal_logged_masked(self, error):
        self._refused(qcow2(backing_offset=1), 'backing_file')
        self.assertIn('backing_file', str(error.call_args))
        self.assertNotIn('secret', str(error.call_args))

    def test_format_matches(self):
        self.assertTrue(gate.format_matches('gpt', 'raw'))
        self.assertTrue(gate.format_matches('raw', 'RAW'))
        self.assertTrue(gate.format_matches('raw', 'ari'))
        self.assertTrue(gate.format_matches('vhd', 'vpc'))
        self.assertTrue(gate.format_matches('vhd', 'vhd'))
        self.assertFalse(gate.format_matches('iso', 'raw'))
        self.assertFalse(gate.format_matches('gpt', 'qcow2'))
        self.assertFalse(gate.format_matches('raw', 'gpt'))


class InspectFileTest(base.TestCase):

    def _write(self, data, name='image'):
        path = os.path.join(self.images_dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def test_qcow2(self):
        detected = inspection.inspect_file(self._write(qcow2()))
        self.assertEqual('qcow2', detected.format)
        self.assertEqual(SIZE, detected.data_size)

    def test_reads_only_what_is_needed(self):
        path = os.path.join(self.images_dir, 'big')
        with open(path, 'wb') as f:
            f.truncate(10 * units.Gi)  # sparse: no disk space used
        fed = []
        real = inspection.StreamInspector.update

        def update(inspector, data):
            fed.append(len(data))
            return real(inspector, data)

        with mock.patch.object(inspection.StreamInspector, 'update',
                               autospec=True, side_effect=update):
            detected = inspection.inspect_file(path)
        self.assertEqual('raw', detected.format)
        self.assertEqual(10 * units.Gi, detected.virtual_size)
        self.assertLessEqual(sum(fed), inspection.HEAD_SIZE)

    def _inspect_counting(self, path):
        fed = []
        real = inspection.StreamInspector.update
        with mock.patch.object(
                inspection.StreamInspector, 'update', autospec=True,
                side_effect=lambda i, d: fed.append(len(d)) or real(i, d)):
            return inspection.inspect_file(path), sum(fed)

    def test_jumps_to_a_vmdk_footer(self):
        self.config(permitted_formats=['vmdk'], group='image_format')
        for footer, verdict in ((vmdk_footer(), 'vmdk'),
                                (vmdk_footer(eos=b'\1'), 'footer'),
                                (bytes(1536), 'footer')):
            data = vmdk(size=64 * MiB, gd_at_end=True)
            data = data[:-len(footer)] + footer
            detected, read = self._inspect_counting(self._write(data))
            self.assertEqual(inspection.HEAD_SIZE + inspection.TAIL_SIZE,
                             read)
            for chunk_size in (4 * MiB, 65535, 1000):
                by_stream = stream(data, chunk_size)
                self.assertEqual(
                    (by_stream.format, by_stream.virtual_size,
                     by_stream.data_size),
                    (detected.format, detected.virtual_size,
                     detected.data_size))
                self.assertEqual(
                    by_stream.inspector.region('footer').data,
                    detected.inspector.region('footer').data)
                self.assertEqual(verdict, _check_name(by_stream) or 'vmdk')
            self.assertEqual(verdict, _check_name(detected) or 'vmdk')

    def test_short_vmdk_with_footer_read_whole(self):
        data = vmdk(size=inspection.HEAD_SIZE + 1000, gd_at_end=True)
        detected, read = self._inspect_counting(self._write(data))
        self.assertEqual(len(data), read)
        self.assertEqual('vmdk', detected.format)

    def test_skip_refused_when_bytes_are_needed(self):
        inspector = inspection.StreamInspector()
        self.assertFalse(inspector.waits_for_end)
        self.assertRaises(exception.ImageUnacceptable, inspector.skip, 1)
        inspector.update(qcow2(size=8192))
        self.assertRaises(exception.ImageUnacceptable, inspector.skip, 1)
        inspector.update(bytes(2 * MiB))
        self.assertTrue(inspector.complete)
        self.assertFalse(inspector.waits_for_end)

    def test_same_as_stream(self):
        for data in (raw(), qcow2(), gpt(), iso(), vmdk(), descriptor_file()):
            by_file = inspection.inspect_file(self._write(data))
            by_stream = stream(data, 511)
            self.assertEqual((by_stream.format, by_stream.virtual_size),
                             (by_file.format, by_file.virtual_size))

    def test_missing(self):
        e = self.assertRaises(exception.ImageNotFound,
                              inspection.inspect_file,
                              os.path.join(self.images_dir, 'nothing'),
                              HREF)
        self.assertNotIn('secret', str(e))

    def test_directory(self):
        self.assertRaises(exception.ImageUnacceptable,
                          inspection.inspect_file, self.images_dir)

    def test_unreadable(self):
        with mock.patch('builtins.open', autospec=True,
                        side_effect=PermissionError(13, 'Permission denied')):
            e = self.assertRaises(exception.ImageUnacceptable,
                                  inspection.inspect_file, '/x', HREF)
        self.assertIn('Permission denied', str(e))


def vmdk_footer(eos=b'\0'):
    """The last 1536 bytes of a VMDK with its grain directory at the end.

    A footer marker, a copy of the header with the real grain directory
    offset, and the end-of-stream marker (``eos`` as its first byte).
    """
    header = bytearray(images.vmdk_sparse()[:512])
    header[56:64] = (4096).to_bytes(8, 'little')
    marker = struct.pack('<QII', 1, 0, 3) + bytes(496)
    return marker + bytes(header) + eos + bytes(511)


def fake_info(fmt, backing=None, data_file=None, create_type=None):
    info = {'filename': '/x', 'format': fmt, 'virtual-size': SIZE}
    if backing:
        info['backing-filename'] = backing
    if data_file:
        info['format-specific'] = {'type': fmt,
                                   'data': {'data-file': data_file}}
    if create_type:
        info['format-specific'] = {'type': 'vmdk',
                                   'data': {'create-type': create_type}}
    return imageutils.QemuImgInfo(json.dumps(info), format='json')


class CinderHelpersTest(base.TestCase):

    def test_check_vmdk_image(self):
        qemu_info.check_vmdk_image('id', fake_info('qcow2'))
        qemu_info.check_vmdk_image('id', fake_info(
            'vmdk', create_type='streamOptimized'))
        for info in (fake_info('vmdk', create_type='monolithicFlat'),
                     fake_info('vmdk')):
            e = self.assertRaises(exception.ImageUnacceptable,
                                  qemu_info.check_vmdk_image, 'id', info)
            self.assertEqual('vmdk_allowed_types', e.kwargs['check'])

    def test_check_image_format_with_data(self):
        info = fake_info('qcow2')
        self.assertIs(info, qemu_info.check_image_format('/x', 'qcow2',
                                                         'id', info))
        qemu_info.check_image_format('/x', None, 'id', info)
        qemu_info.check_image_format('/x', 'raw', 'id', fake_info('raw'))
        qemu_info.check_image_format('/x', 'vhd', 'id', fake_info('vpc'))
        qemu_info.check_image_format('/x', 'iso', 'id', fake_info('raw'))
        for args, check in (
                (('qcow2', fake_info('raw')), 'format_match'),
                (('qcow2', fake_info('qcow2', backing='/etc/passwd')),
                 'backing_file'),
                ((None, fake_info('qcow2', data_file='/dev/sda')),
                 'data_file'),
                (('vmdk', fake_info('vmdk', create_type='vmfs')),
                 'vmdk_allowed_types')):
            e = self.assertRaises(exception.ImageUnacceptable,
                                  qemu_info.check_image_format, '/x',
                                  args[0], HREF, args[1])
            self.assertEqual(check, e.kwargs['check'])
            self.assertNotIn('secret', str(e))

    def test_check_image_format_mismatch_allowed(self):
        self.config(require_format_match=False, group='image_format')
        qemu_info.check_image_format('/x', 'qcow2', 'id', fake_info('raw'))

    def test_check_image_format_no_format(self):
        info = fake_info('raw')
        info.file_format = None
        e = self.assertRaises(exception.ImageUnacceptable,
                              qemu_info.check_image_format, '/x', None,
                              'id', info)
        self.assertEqual('format', e.kwargs['check'])

    def test_check_image_format_inspects_before_qemu_img(self):
        path = os.path.join(self.images_dir, 'image')
        with open(path, 'wb') as f:
            f.write(gpt())
        info = fake_info('raw')
        with mock.patch('ironic_images.qemu.info.qemu_img_info',
                        autospec=True, return_value=info) as qemu:
            self.assertIs(info, qemu_info.check_image_format(path, 'raw'))
        qemu.assert_called_once_with(path, 'raw', path)

    def test_check_image_format_refused_never_runs_qemu_img(self):
        path = os.path.join(self.images_dir, 'image')
        with open(path, 'wb') as f:
            f.write(qcow2(backing_offset=512))
        with mock.patch('ironic_images.qemu.info.qemu_img_info',
                        autospec=True) as qemu:
            e = self.assertRaises(exception.InvalidImage,
                                  qemu_info.check_image_format, path,
                                  'qcow2', HREF)
        qemu.assert_not_called()
        self.assertEqual('backing_file', e.kwargs['check'])

    def test_check_virtual_size(self):
        self.assertEqual(1, gate.check_virtual_size(units.Gi, 1, 'id'))
        self.assertEqual(2, gate.check_virtual_size(units.Gi + 1, 2,
                                                    'id'))
        self.assertEqual(0, gate.check_virtual_size(0, 0, 'id'))
        self.assertEqual(5, gate.check_virtual_size(5 * units.Gi, None,
                                                    'id'))
        # A size read from JSON or a config may be a string.
        self.assertEqual(1, gate.check_virtual_size(str(units.Gi), 1,
                                                    'id'))
        for size, volume in ((units.Gi + 1, 1), (None, 1), ('x', 1),
                             (float('nan'), 1), (float('inf'), 1), (-1, 1),
                             ('-1', 1)):
            e = self.assertRaises(exception.ImageUnacceptable,
                                  gate.check_virtual_size, size,
                                  volume, HREF)
            self.assertEqual('virtual_size', e.kwargs['check'])
            self.assertNotIn('secret', str(e))
