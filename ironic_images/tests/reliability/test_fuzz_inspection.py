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

"""Fuzzing the image headers fed to inspection, and hostile images.

Seed images of every format qemu-img makes (and the hostile ones of
:mod:`ironic_images.tests.functional.images`: backing and data files, a
flat VMDK pointing at a host file, a huge VMDK descriptor) have bytes of
their first MiB or of their last 64 KiB overwritten by hypothesis: magic
numbers, sizes, offsets and counts set to extremes. Each mutant streams
through :class:`~ironic_images.formats.inspection.StreamInspector` in random
chunk sizes and through :func:`~ironic_images.formats.inspection.inspect_file`,
then the safety gate :func:`~ironic_images.formats.gate.check_image`.

Property: a verdict (a format, or InvalidImage/ImageUnacceptable), the
same whatever the chunking; within a bounded time and bounded memory
(traced allocations of one inspection under 64 MiB, for images that
claim terabytes of tables).
"""

import os
import struct
import tracemalloc

import fixtures
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from oslo_utils import units

from ironic_images import exception
from ironic_images.fetch import fetcher
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import base as servers_base
from ironic_images.tests.reliability import base

SEED_KINDS = ['qcow2', 'qcow2-backing-file', 'qcow2-data-file',
              'vmdk-monolithic-sparse', 'vmdk-stream-optimized',
              'vmdk-monolithic-flat', 'vmdk-huge-descriptor', 'vhdx', 'vpc',
              'vdi', 'qed', 'luks', 'iso', 'gpt', 'iso-qcow2', 'raw']
MEMORY_LIMIT = 64 * units.Mi
HREF = 'http://127.0.0.1:9/fuzzed.img'
# Values that break size and offset arithmetic.
EXTREMES = [0, 1, 0x7f, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0xffffffff,
            0x7fffffffffffffff, 0xffffffffffffffff, 512, 4096, 65536,
            1 << 40]


def _field(value, width, order):
    return (value % (1 << (8 * width))).to_bytes(width, order)


mutation = st.one_of(
    # A field set to an extreme, at a random place in the head.
    st.tuples(st.integers(0, 4096), st.builds(
        _field, st.sampled_from(EXTREMES), st.sampled_from([2, 4, 8]),
        st.sampled_from(['little', 'big']))),
    # Random bytes anywhere in the first MiB.
    st.tuples(st.integers(0, units.Mi), st.binary(min_size=1, max_size=64)),
    # Near the end: footers (VMDK, VHD) live there.
    st.tuples(st.integers(-65536, -1), st.binary(min_size=1, max_size=64)))


class TestInspectionFuzz(base.ReliabilityTestCase):

    seeds = None

    @classmethod
    def _make_seeds(cls):
        if cls.seeds is None:
            servers_base.require_binary('qemu-img')
            directory = fixtures.TempDir()
            directory.setUp()
            try:
                seeds = {}
                for kind in SEED_KINDS:
                    path = images.make_image(kind, directory.path,
                                             size=2 * units.Mi)
                    with open(path, 'rb') as f:
                        seeds[kind] = f.read()
            finally:
                directory.cleanUp()
            cls.seeds = seeds
        return cls.seeds

    def setUp(self):
        super().setUp()
        self._make_seeds()

    def inspect_stream(self, data, chunks):
        inspector = inspection.StreamInspector(HREF)
        view, at = memoryview(data), 0
        while at < len(data) and not inspector.complete:
            size = chunks[at % len(chunks)]
            inspector.update(view[at:at + size])
            at += size
        inspector.finish(size=len(data))
        return inspector.result()

    def verdict(self, detected):
        try:
            return gate.check_image(detected, HREF)
        except (exception.InvalidImage, exception.ImageUnacceptable) as e:
            return type(e).__name__

    def check(self, data, chunks):
        tracemalloc.start()
        try:
            with base.bounded(what='inspection of a fuzzed image'):
                streamed = self.inspect_stream(data, chunks)
                verdict = self.verdict(streamed)
                path = os.path.join(self.tmp, 'fuzzed.img')
                with open(path, 'wb') as f:
                    f.write(data)
                from_file = inspection.inspect_file(path, HREF)
                self.assertEqual(verdict, self.verdict(from_file))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.assertLess(peak, MEMORY_LIMIT)
        self.assertEqual(streamed.format, from_file.format)
        self.assertEqual(streamed.virtual_size, from_file.virtual_size)
        self.assertIsInstance(verdict, str)

    @given(st.sampled_from(SEED_KINDS), st.lists(mutation, max_size=6),
           st.lists(st.sampled_from([511, 4096, 65536, 65537, units.Mi,
                                     3 * units.Mi]), min_size=1, max_size=4))
    @settings(max_examples=150)
    def test_mutated_headers(self, kind, mutations, chunks):
        data = bytearray(self.seeds[kind])
        for offset, value in mutations:
            if offset < 0:
                offset += len(data)
            data[offset:offset + len(value)] = value
        self.check(bytes(data[:len(self.seeds[kind])]), chunks)

    @given(st.sampled_from([b'QFI\xfb', b'KDMV', b'vhdxfile', b'conectix',
                            b'<<< Oracle VM VirtualBox Disk Image >>>\n',
                            b'QED\x00', b'LUKS\xba\xbe', b'COWD',
                            b'# Disk DescriptorFile\n']),
           st.binary(max_size=4096), st.integers(0, 4) .map(
               lambda n: n * 256 * units.Ki + 1536))
    @settings(max_examples=150)
    def test_magic_then_noise(self, magic, noise, padding):
        self.check(magic + noise + bytes(padding), [65536])

    def test_vhdx_region_table_claims_everything(self):
        """A VHDX whose region table entries point past any file."""
        data = bytearray(self.seeds['vhdx'])
        for table in (192 * units.Ki, 256 * units.Ki):
            # Entry count, then each entry's offset and length, at most.
            struct.pack_into('<I', data, table + 8, 0xffffffff)
            for entry in range(8):
                struct.pack_into('<QI', data, table + 16 + entry * 32 + 16,
                                 0xffffffffffff0000, 0xfffffff0)
        self.check(bytes(data), [65536])

    def test_huge_vmdk_descriptor(self):
        self.check(self.seeds['vmdk-huge-descriptor'], [65536])


HOSTILE_KINDS = ['qcow2-backing-file', 'qcow2-data-file',
                 'vmdk-monolithic-flat', 'vmdk-flat-host-file',
                 'vmdk-huge-descriptor', 'qed', 'iso-qcow2']


class TestHostileImagesThroughFetch(base.ReliabilityTestCase):
    """Every hostile kind is refused by fetch, even with all formats on.

    The refusal must come from the safety checks, not from
    [image_format]permitted_formats: every format is permitted here. The
    whole fetch (file:// source, stream, inspection, gate) runs within
    bounded time and memory, and leaves nothing at the destination.
    """

    def test_refused(self):
        servers_base.require_binary('qemu-img')
        self.config(permitted_formats=['raw', 'gpt', 'qcow2', 'iso', 'vmdk',
                                       'vhdx', 'vhd', 'vdi', 'qed', 'luks'],
                    group='image_format')
        for kind in HOSTILE_KINDS:
            path = images.make_image(kind, self.images_dir,
                                     size=2 * units.Mi)
            dest = os.path.join(self.dest_dir, kind)
            tracemalloc.start()
            try:
                with base.bounded(what='fetch of %s' % kind):
                    self.assertRaises(exception.InvalidImage,
                                      fetcher.fetch, None,
                                      'file://' + path, dest)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            self.assertLess(peak, MEMORY_LIMIT, kind)
            self.assertNothingAt(dest, kind)
