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

"""The accept/refuse matrix of the safety gate, on real images.

Every image is made by qemu-img or written the way its format says
(``images.py``). For each kind, the verdict of :func:`check_image` is
checked under the default options and under options that permit every
format; :func:`check_image_format` is run with ``processutils.execute``
and ``subprocess.Popen`` watched, so a refused image is proven never to
reach a qemu-img process, and an accepted one is proven to reach it.
"""

import os
import subprocess
import tracemalloc
from unittest import mock

import fixtures
from oslo_concurrency import processutils
from oslo_utils import units

from ironic_images import exception
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.qemu import info as qemu_info
from ironic_images.tests import base
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import base as servers_base

MiB = units.Mi
HREF = 'https://user:secret@images.example.com/disk'

ALL_FORMATS = ['raw', 'gpt', 'qcow2', 'iso', 'vmdk', 'vhd', 'vhdx', 'vdi',
               'qed', 'luks']

# kind -> (verdict with the default options, verdict when every format is
# permitted). A verdict is the format check_image returns, or
# (exception class, name of the failed check).
REFUSED = exception.InvalidImage
UNWANTED = exception.ImageUnacceptable
MATRIX = {
    'raw': ('raw', 'raw'),
    'gpt': ('gpt', 'gpt'),
    'qcow2': ('qcow2', 'qcow2'),
    'qcow2-v2': ('qcow2', 'qcow2'),
    'qcow2-compressed': ('qcow2', 'qcow2'),
    'qcow2-backing-file': ((REFUSED, 'backing_file'),) * 2,
    'qcow2-data-file': ((REFUSED, 'data_file'),) * 2,
    'vmdk-monolithic-sparse': ((UNWANTED, 'permitted_formats'), 'vmdk'),
    'vmdk-stream-optimized': ((UNWANTED, 'permitted_formats'), 'vmdk'),
    'vmdk-monolithic-flat': ((REFUSED, 'vmdk_allowed_types'),) * 2,
    'vmdk-flat-host-file': ((REFUSED, 'vmdk_allowed_types'),) * 2,
    'vmdk-huge-descriptor': ((REFUSED, 'vmdk_descriptor_file'),) * 2,
    'vhdx': ((UNWANTED, 'permitted_formats'), 'vhdx'),
    'vpc': ((UNWANTED, 'permitted_formats'), 'vhd'),
    'vpc-fixed': ('raw', 'raw'),
    'vdi': ((UNWANTED, 'permitted_formats'), 'vdi'),
    'qed': ((REFUSED, 'banned'),) * 2,
    'luks': ((UNWANTED, 'permitted_formats'), 'luks'),
    'iso': ('iso', 'iso'),
    'iso-gpt': ('iso', 'iso'),
    'iso-qcow2': ((REFUSED, 'single_format'),) * 2,
    'garbage': ('raw', 'raw'),
    'truncated-qcow2': ('raw', 'raw'),
    'empty': ('raw', 'raw'),
}

# What qemu-img info calls an accepted format.
QEMU_NAMES = {'gpt': 'raw', 'iso': 'raw', 'vhd': 'vpc'}

# How much of each image is fed one byte at a time: the ISO volume
# descriptor ends at 34 KiB, every other header but VHDX's is before it.
ONE_BYTE_SPAN = 40 * units.Ki


class InspectionTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        servers_base.require_binary('qemu-img')
        self.config(group='image_convert', memory_limit_mb=1024)

    def make(self, kind, size=images.DEFAULT_SIZE):
        return images.make_image(kind, self.images_dir, size=size)

    def permit_all(self):
        self.config(permitted_formats=ALL_FORMATS, group='image_format')

    def verdict(self, path, expected_format=None):
        detected = inspection.inspect_file(path, HREF)
        try:
            return gate.check_image(detected, HREF, expected_format)
        except exception.ImageUnacceptable as e:
            self.assertNotIn('secret', str(e))
            self.assertIn('%s check failed' % e.kwargs['check'], str(e))
            return type(e), e.kwargs['check']

    def watch_processes(self):
        """Record every process started; they still run."""
        execute = self.useFixture(fixtures.MockPatchObject(
            processutils, 'execute', wraps=processutils.execute))
        popen = self.useFixture(fixtures.MockPatchObject(
            subprocess, 'Popen', wraps=subprocess.Popen))
        return execute.mock, popen.mock


def _qemu_ran(*mocks):
    return [c for m in mocks for c in m.call_args_list
            if 'qemu-img' in str(c)]


class MatrixTest(InspectionTestCase):
    """One test per kind of image: the verdict, then qemu-img or not."""

    def _check(self, kind, verdict):
        path = self.make(kind)
        self.assertEqual(verdict, self.verdict(path))
        execute, popen = self.watch_processes()
        if isinstance(verdict, tuple):
            e = self.assertRaises(verdict[0], qemu_info.check_image_format,
                                  path, None, HREF)
            self.assertEqual(verdict[1], e.kwargs['check'])
            self.assertEqual([], _qemu_ran(execute, popen))
        else:
            info = qemu_info.check_image_format(path, None, HREF)
            self.assertEqual(QEMU_NAMES.get(verdict, verdict),
                             info.file_format)
            self.assertNotEqual([], _qemu_ran(execute, popen))

    @classmethod
    def add_tests(cls):
        for kind, (default, permissive) in MATRIX.items():
            name = kind.replace('-', '_')

            def test_default(self, kind=kind, verdict=default):
                self._check(kind, verdict)

            def test_permissive(self, kind=kind, verdict=permissive):
                self.permit_all()
                self._check(kind, verdict)

            setattr(cls, 'test_%s' % name, test_default)
            setattr(cls, 'test_%s_all_permitted' % name, test_permissive)


MatrixTest.add_tests()


class MatrixCoverageTest(base.TestCase):

    def test_every_kind_has_a_verdict(self):
        self.assertEqual(sorted(images.KINDS), sorted(MATRIX))


class DetectionTest(InspectionTestCase):

    def test_detected_formats(self):
        for kind, formats in images.KINDS.items():
            detected = inspection.inspect_file(self.make(kind))
            self.assertEqual(formats, detected.matches, kind)

    def test_virtual_size_agrees_with_qemu_img(self):
        self.permit_all()
        for kind in ('qcow2', 'qcow2-compressed', 'vmdk-monolithic-sparse',
                     'vmdk-stream-optimized', 'vhdx', 'vdi', 'raw', 'gpt',
                     'iso'):
            path = self.make(kind, size=8 * MiB)
            detected = inspection.inspect_file(path)
            info = qemu_info.check_image_format(path)
            self.assertEqual(info.virtual_size, detected.virtual_size, kind)

    def test_same_verdict_whatever_the_chunks(self):
        self.permit_all()
        for kind in images.KINDS:
            path = self.make(kind, size=256 * units.Ki)
            with open(path, 'rb') as f:
                data = f.read()
            reference = inspection.inspect_file(path)
            for chunk_size in (1, 511, 4096, 4 * MiB):
                inspector = inspection.StreamInspector(HREF)
                view = memoryview(data)
                # One byte at a time costs ~3 us a call: over every header
                # but the VHDX's, then the rest at once.
                end = ONE_BYTE_SPAN if chunk_size == 1 else len(data)
                for offset in range(0, end, chunk_size):
                    inspector.update(view[offset:offset + chunk_size])
                inspector.update(view[end:])
                inspector.finish()
                detected = inspector.result()
                self.assertEqual(
                    (reference.format, reference.matches,
                     reference.virtual_size, reference.errors),
                    (detected.format, detected.matches,
                     detected.virtual_size, detected.errors),
                    '%s in chunks of %d' % (kind, chunk_size))

    def test_declared_formats(self):
        cases = [('raw', 'raw', 'raw'), ('gpt', 'raw', 'raw'),
                 ('gpt', 'gpt', 'gpt'), ('iso-gpt', 'iso', 'iso'),
                 ('qcow2', 'qcow2', 'qcow2'), ('vpc-fixed', 'raw', 'raw'),
                 ('qcow2', 'raw', (UNWANTED, 'format_match')),
                 ('raw', 'qcow2', (UNWANTED, 'format_match')),
                 ('iso', 'raw', (UNWANTED, 'format_match')),
                 ('truncated-qcow2', 'qcow2', (UNWANTED, 'format_match'))]
        for kind, declared, verdict in cases:
            self.assertEqual(verdict, self.verdict(self.make(kind), declared),
                             '%s declared %s' % (kind, declared))

    def test_vmdk_allowed_types_narrowed(self):
        self.permit_all()
        self.config(vmdk_allowed_types=['monolithicSparse'],
                    group='image_format')
        path = self.make('vmdk-stream-optimized')
        self.assertEqual((REFUSED, 'vmdk_allowed_types'), self.verdict(path))
        self.assertEqual('vmdk', self.verdict(self.make(
            'vmdk-monolithic-sparse')))

    def test_deep_inspection_disabled(self):
        self.config(disable_deep_inspection=True, group='image_format')
        self.assertEqual('qcow2', self.verdict(self.make(
            'qcow2-backing-file')))
        # What is not the format inspector's safety check still applies.
        self.assertEqual((REFUSED, 'single_format'),
                         self.verdict(self.make('iso-qcow2')))
        self.assertEqual((REFUSED, 'vmdk_allowed_types'),
                         self.verdict(self.make('vmdk-flat-host-file')))
        self.assertEqual((UNWANTED, 'permitted_formats'),
                         self.verdict(self.make('vhdx')))


class HostileInputTest(InspectionTestCase):
    """Large hostile files are decided from their first MiB."""

    def _inspect_bounded(self, path):
        fed = []
        real = inspection.StreamInspector.update

        def update(inspector, data):
            fed.append(len(data))
            return real(inspector, data)

        tracemalloc.start()
        try:
            with mock.patch.object(inspection.StreamInspector, 'update',
                                   autospec=True, side_effect=update):
                detected = inspection.inspect_file(path, HREF)
            _size, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertLessEqual(sum(fed), inspection.HEAD_SIZE)
        self.assertLess(peak, 8 * MiB)
        return detected

    def test_huge_vmdk_descriptor(self):
        path = self.make('vmdk-huge-descriptor', size=64 * MiB)
        self.assertEqual(64 * MiB, os.path.getsize(path))
        detected = self._inspect_bounded(path)
        self.assertEqual('vmdk', detected.format)
        self.assertLess(len(detected.inspector.desc_text), MiB)
        self.permit_all()
        e = self.assertRaises(REFUSED, gate.check_image, detected,
                              HREF)
        self.assertEqual('vmdk_descriptor_file', e.kwargs['check'])

    def test_random_bytes(self):
        path = self.make('garbage', size=64 * MiB)
        detected = self._inspect_bounded(path)
        self.assertEqual('raw', detected.format)
        self.assertEqual(64 * MiB, detected.virtual_size)

    def test_sparse_raw_of_10_gib(self):
        path = os.path.join(self.images_dir, 'big.img')
        with open(path, 'wb') as f:
            f.truncate(10 * units.Gi)
        detected = self._inspect_bounded(path)
        self.assertEqual('raw', detected.format)
        self.assertEqual(10 * units.Gi, detected.virtual_size)

    def test_truncated_real_images(self):
        self.permit_all()
        for kind in ('qcow2', 'vmdk-monolithic-sparse', 'vhdx', 'vdi',
                     'vpc', 'luks', 'iso', 'gpt'):
            path = self.make(kind)
            with open(path, 'rb') as f:
                data = f.read(300 * units.Ki)
            for length in (1, 100, 511, 513, 4096, 40 * units.Ki,
                           300 * units.Ki - 1):
                with open(path, 'wb') as f:
                    f.write(data[:length])
                # A verdict, or a refusal naming its check: nothing else.
                self.verdict(path)
