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

"""Differential fuzzing of the streaming qcow2 decoder: mutated images.

Seed images are real qemu-img qcow2 files of a few MiB (plain, version 2,
zlib- and zstd-compressed, and one whose L1 table a resize moved past its
data). Hypothesis overwrites bytes of their header, L1 and L2 tables,
compressed data and data clusters (table entries rebuilt from the seed's
own offsets and flags, header fields set to edge values, random bytes,
bit flips, a truncation), then checks each mutant with
``qcow2_differential``: exactly ``qemu-img convert``'s raw disk, a
refusal or a fall back to qemu-img, in bounded memory. Each test attaches
(and prints) the tally of outcomes. Crafted images built from scratch are
in ``test_fuzz_qcow2_crafted``.
"""

import os
import random
import struct

import fixtures
from hypothesis import strategies as st
from oslo_utils import units

from ironic_images.tests.functional import images
from ironic_images.tests.functional import qcow2_variants as streams
from ironic_images.tests.functional.servers import base as servers_base
from ironic_images.tests.reliability import qcow2_differential

SEED_SIZE = 4 * units.Mi
#: The seed with two L2 tables: past 512 MiB (64 KiB clusters).
TWO_TABLES_SIZE = 640 * units.Mi
#: A mutant whose header claims a larger disk (and a larger one than its
#: seed's) gets the seed's size back: qemu-img would write that much.
MAX_VIRTUAL = 64 * units.Mi

OFFSET_MASK = 0x00fffffffffffe00
COPIED = 1 << 63
COMPRESSED = 1 << 62
ZERO = 1

CHUNKS = [511, 4096, 65535, 65536, 65537, 100000, units.Mi]


class Layout:
    """Where the structures of a qcow2 file are, read from its bytes.

    :ivar regions: name -> list of ``(offset, length)``: ``header``,
        ``l1``, ``l2`` (the entries that map the disk), ``compressed``,
        ``data``, ``refcount``.
    :ivar offsets: host offsets worth pointing a table entry at.
    """

    def __init__(self, data):
        (_magic, version, _bo, _bs, bits, size, _crypt, l1_size, l1_offset,
         refcount_offset, _rc, _ns, snapshots_offset) = struct.unpack_from(
            '>4sIQIIQIIQQIIQ', data)
        self.version = version
        self.virtual_size = size
        self.cluster_bits = bits
        cs = self.cluster_size = 1 << bits
        header_length = 72 if version == 2 else struct.unpack_from(
            '>I', data, 100)[0]
        self.regions = {'header': [(0, header_length)],
                        'l1': [(l1_offset, l1_size * 8)],
                        'refcount': [(refcount_offset, cs)],
                        'l2': [], 'compressed': [], 'data': []}
        entries = -(-size // cs)
        size_shift = 62 - (bits - 8)
        for number in range(l1_size):
            l2 = struct.unpack_from('>Q', data, l1_offset + number * 8)[0]
            l2 &= OFFSET_MASK
            if not l2:
                continue
            used = min(cs // 8, entries - number * (cs // 8))
            self.regions['l2'].append((l2, used * 8))
            for slot in range(used):
                word = struct.unpack_from('>Q', data, l2 + slot * 8)[0]
                if word & COMPRESSED:
                    host = word & ((1 << size_shift) - 1)
                    sectors = ((word >> size_shift)
                               & ((1 << (bits - 8)) - 1)) + 1
                    length = min(sectors * 512 - host % 512,
                                 len(data) - host)
                    self.regions['compressed'].append((host, length))
                elif word & OFFSET_MASK:
                    self.regions['data'].append((word & OFFSET_MASK, cs))
        self.regions = {k: v for k, v in self.regions.items() if v}
        clusters = range(0, len(data) + cs, cs)
        self.offsets = sorted(set(clusters) | {
            l1_offset, refcount_offset, snapshots_offset, len(data),
            len(data) + 7 * cs, 1 << 40})
        self.words = [w for w in self._words(data)]

    def _words(self, data):
        """The table entries of the seed (to move between tables)."""
        for offset, length in self.regions.get('l1', []) + self.regions.get(
                'l2', []):
            for at in range(offset, offset + length, 8):
                yield struct.unpack_from('>Q', data, at)[0]


# Header fields: (offset, width, edge values); values near a seed's own
# size (24: the virtual size) and its offsets (40: the L1 table) are added
# per seed.
HEADER_FIELDS = [
    (4, 4, [0, 1, 2, 3, 4, 0xffffffff]),                 # version
    (8, 8, [0, 72, 1 << 40]),                            # backing offset
    (16, 4, [0, 8, 1023, 0xffffffff]),                   # backing size
    (20, 4, [0, 8, 9, 12, 15, 16, 17, 20, 21, 22, 31, 63, 64]),
    (24, 8, [0, 1, 511, 512, 513, 65535, 65536, MAX_VIRTUAL]),
    (32, 4, [0, 1, 2]),                                  # crypt method
    (36, 4, [0, 1, 2, 3, 0x10000, 0xffffffff]),          # L1 size
    (40, 8, [0, 512, 65536 + 8]),                        # L1 offset
    (48, 8, [0, 8, 1 << 40]),                            # refcount table
    (56, 4, [0, 1, 2, 0xffffffff]),                      # refcount clusters
    (60, 4, [0, 1, 2, 0xffffffff]),                      # snapshots
    (64, 8, [0, 1, 1 << 40]),                            # snapshots offset
    (72, 8, [0, 1, 2, 4, 8, 16, 1 << 63, 0xff]),         # incompatible
    (80, 8, [0, 1, 0xff]),                               # compatible
    (88, 8, [0, 1, 2, 0xff]),                            # autoclear
    (96, 4, [0, 1, 3, 4, 6, 7, 8, 0xffffffff]),          # refcount order
    (100, 4, [0, 72, 100, 104, 105, 112, 4096, 0xffffffff]),
    (104, 1, [0, 1, 2, 0xff]),                           # compression type
]


def _pack(value, width):
    return (value % (1 << (8 * width))).to_bytes(width, 'big')


@st.composite
def entry_word(draw, layout):
    """A table entry: flags over one of the seed's offsets, or a seed's."""
    kind = draw(st.sampled_from(['normal', 'compressed', 'zero', 'seed',
                                 'raw']))
    offset = draw(st.sampled_from(layout.offsets))
    offset += draw(st.sampled_from([0, 0, 0, 1, 512, -512]))
    offset = max(offset, 0)
    if kind == 'seed' and layout.words:
        return draw(st.sampled_from(layout.words))
    if kind == 'compressed':
        size_shift = 62 - (layout.cluster_bits - 8)
        sectors = draw(st.sampled_from([0, 1, 2, 63, 64, 65, 127, 128,
                                        (1 << (layout.cluster_bits - 8)) - 1]))
        offset = draw(st.sampled_from([offset, offset + 100,
                                       offset + 4000]))
        return (COMPRESSED | (sectors << size_shift)
                | (offset & ((1 << size_shift) - 1)))
    if kind == 'zero':
        return ZERO | (offset & OFFSET_MASK if draw(st.booleans()) else 0)
    if kind == 'raw':
        return draw(st.integers(0, (1 << 64) - 1))
    copied = COPIED if draw(st.booleans()) else 0
    return copied | offset


@st.composite
def mutation(draw, layout, data_length):
    """One change to a seed.

    ``(offset, bytes)``, ``('xor', offset, mask)`` or ``('cut', length)``.
    """
    kind = draw(st.sampled_from(['entry', 'entry', 'entry', 'field',
                                 'bytes', 'flip', 'cut']))
    if kind == 'field':
        at, width, values = draw(st.sampled_from(HEADER_FIELDS))
        if at == 24:
            size = layout.virtual_size
            values = values + [size - 512, size - 1, size + 1, size + 512,
                               2 * size, size - 512 * units.Mi]
        elif at == 40:
            values = values + layout.offsets
        return at, _pack(draw(st.sampled_from(values)), width)
    if kind == 'cut':
        return ('cut', draw(st.sampled_from(
            [0, 72, 104, 4096, layout.cluster_size, data_length // 2,
             data_length - layout.cluster_size, data_length - 1])))
    region = draw(st.sampled_from(sorted(layout.regions)))
    start, length = draw(st.sampled_from(layout.regions[region]))
    at = start + draw(st.integers(0, max(length - 1, 0)))
    if kind == 'entry':
        at -= (at - start) % 8
        return at, _pack(draw(entry_word(layout)), 8)
    if kind == 'flip':
        return ('xor', at, 1 << draw(st.integers(0, 7)))
    return at, draw(st.binary(min_size=1, max_size=16))


def apply(data, mutations, layout):
    data = bytearray(data)
    for change in mutations:
        if change[0] == 'cut':
            del data[change[1]:]
        elif change[0] == 'xor':
            if change[1] < len(data):
                data[change[1]] ^= change[2]
        else:
            at, value = change
            if at < len(data):
                data[at:at + len(value)] = value[:len(data) - at]
    if len(data) >= 32:
        size = struct.unpack_from('>Q', data, 24)[0]
        if size > max(MAX_VIRTUAL, layout.virtual_size):
            struct.pack_into('>Q', data, 24, layout.virtual_size)
    return bytes(data)


class TestQcow2StreamDifferential(
        qcow2_differential.Qcow2DifferentialTestCase):

    seeds = None

    @classmethod
    def _make_seeds(cls):
        if cls.seeds is None:
            servers_base.require_binary('qemu-img')
            servers_base.require_binary('qemu-io')
            directory = fixtures.TempDir()
            directory.setUp()
            try:
                cls.seeds = {name: cls._seed(directory.path, name)
                             for name in ('plain', 'v2', 'zlib', 'zstd',
                                          'resized', 'two-tables')}
            finally:
                directory.cleanUp()
        return cls.seeds

    @staticmethod
    def _seed(directory, name):
        path = os.path.join(directory, name + '.qcow2')
        noise = os.path.join(directory, 'noise')
        if not os.path.exists(noise):
            with open(noise, 'wb') as f:
                # Incompressible, the same on every run.
                f.write(random.Random(20261122).randbytes(64 * units.Ki))
        options = ['-o', 'compat=0.10'] if name == 'v2' else []
        if name == 'two-tables':
            images.qemu_img('create', '-q', '-f', 'qcow2', path,
                            TWO_TABLES_SIZE)
            # In mixed guest order: the second L2 table is allocated
            # between data clusters of the first.
            streams.qemu_io(path, 'write -P 0x01 64k 64k',
                            'write -P 0x02 %d 64k' % (512 * units.Mi + 65536),
                            'write -s %s 192k 64k' % noise,
                            'write -P 0x03 %d 70000' % (513 * units.Mi + 512),
                            'write -P 0x04 0 4k',
                            'write -s %s %d 64k' % (noise, 512 * units.Mi),
                            'write -P 0x05 %d 512' % (TWO_TABLES_SIZE - 512))
            with open(path, 'rb') as f:
                data = f.read()
            return data, Layout(data)
        images.qemu_img('create', '-q', '-f', 'qcow2', *options, path,
                        SEED_SIZE)
        writes = ['write -P 0x11 0 4k', 'write -s %s 64k 128k' % noise,
                  'write -P 0x5a 1000000 70000', 'write -z 1M 64k',
                  'write -P 0xee %d 512' % (SEED_SIZE - 512)]
        if name in ('zlib', 'zstd'):
            # Compressible clusters, some straddling a host cluster.
            writes += ['write -P 0x%02x %d 40k' % (0x40 + n, offset)
                       for n, offset in enumerate(range(
                           2 * units.Mi, 2 * units.Mi + 6 * 65536, 65536))]
        streams.qemu_io(path, *writes)
        if name == 'resized':
            # Grow past one L1 entry (the L1 table moves to the end of the
            # file) and shrink back: a small disk, its L1 after its data.
            images.qemu_img('resize', '-q', '-f', 'qcow2', path, '600M')
            images.qemu_img('resize', '-q', '-f', 'qcow2', '--shrink', path,
                            SEED_SIZE)
            streams.qemu_io(path, 'write -P 0x77 3M 64k')
        if name in ('zlib', 'zstd'):
            compressed = path + '.c'
            images.qemu_img('convert', '-f', 'qcow2', '-O', 'qcow2', '-c',
                            '-o', 'compression_type=' + name, path,
                            compressed)
            os.replace(compressed, path)
        with open(path, 'rb') as f:
            data = f.read()
        return data, Layout(data)

    def setUp(self):
        super().setUp()
        self._make_seeds()

    def fuzz(self, name, count):
        seed, layout = self.seeds[name]

        def one(data):
            mutations = data.draw(st.lists(mutation(layout, len(seed)),
                                           min_size=1, max_size=4))
            chunks = data.draw(st.lists(st.sampled_from(CHUNKS),
                                        min_size=1, max_size=3))
            return [name], self.check(apply(seed, mutations, layout),
                                      chunks)

        tally = self.run_examples(qcow2_differential.examples(count), one)
        self.report(tally)
        self.assertGreater(tally[name, 'same'], 0)

    # --- tests -------------------------------------------------------------

    def test_seeds_stream_to_qemu_img_s_disk(self):
        """The harness compares: every unmutated seed streams the same."""
        for name, (seed, layout) in sorted(self.seeds.items()):
            self.assertEqual('same', self.check(seed, [65537]), name)
            self.assertIn('data', layout.regions, name)
        self.assertIn('compressed', self.seeds['zstd'][1].regions)
        self.assertEqual(2, len(self.seeds['two-tables'][1].regions['l2']))
        resized = self.seeds['resized'][1].regions
        self.assertGreater(resized['l1'][0][0],
                           min(offset for offset, _ in resized['data']))

    def test_virtual_size_not_a_multiple_of_512(self):
        # qemu reads whole sectors: it rounds the size down (a disk of
        # 4 MiB - 100 bytes is 4 MiB - 512 bytes; one of 1 byte is empty).
        for name in ('plain', 'v2', 'resized'):
            seed, layout = self.seeds[name]
            for size in (SEED_SIZE - 100, 1):
                mutant = apply(seed, [(24, _pack(size, 8))], layout)
                self.assertEqual('same', self.check(mutant, [65536]),
                                 '%s of size %d' % (name, size))

    def test_plain(self):
        self.fuzz('plain', 150)

    def test_version_2(self):
        self.fuzz('v2', 100)

    def test_zlib(self):
        self.fuzz('zlib', 150)

    def test_zstd(self):
        self.fuzz('zstd', 150)

    def test_resized(self):
        self.fuzz('resized', 150)

    def test_two_l2_tables(self):
        self.fuzz('two-tables', 100)
