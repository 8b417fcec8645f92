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

"""Differential fuzzing of the stream decoder: images built to attack it.

Hypothesis lays out qcow2 files of 16 host clusters from scratch with the
unit tests' builder (:mod:`ironic_images.tests.unit.sink.qcow2_builder`):
the L1 and L2 tables anywhere, the other clusters data, compressed or
free, in these classes of input (a test each, every class in each):

* spans: compressed bytes that run past their host cluster, into a data
  cluster placed as it passed, a table (L1, L2, refcounts), a free or
  compressed cluster, or past the end of the file, mapped by the L2 table
  ahead of them or behind them;
* back-references: deflate (32 KiB window) and zstd streams of clusters
  that repeat themselves from far back, deflate streams whose last
  distance code is in the next cluster, stored and raw blocks;
* shared sectors: up to a thousand entries on the same compressed bytes,
  each claiming its sectors, one more, or the most an entry can;
* entry states: L2 entries in every state (see :data:`STATES`).

Each image is checked by
:mod:`~ironic_images.tests.reliability.qcow2_differential` (exactly
``qemu-img convert``'s raw disk, or a refusal, in bounded memory) and the
tally of classes and outcomes is attached to the test.
"""

import hashlib
import random
import zlib

from hypothesis import strategies as st
from oslo_utils import units
import zstandard

from ironic_images.tests.reliability import qcow2_differential
from ironic_images.tests.unit.sink import compressed_streams as cstreams
from ironic_images.tests.unit.sink import qcow2_builder as qb

CS = 64 * units.Ki
HOSTS = 16
CHUNKS = [511, 4096, 65535, 65536, 65537, 100000, units.Mi]
#: The most 512-byte sectors an entry can claim (64 KiB clusters).
MOST_SECTORS = CS // 256
TABLES = ('L1', 'L2', 'refcount')
#: L2 entry states the entry-states class draws from.
STATES = ('unallocated', 'unallocated copied', 'zero', 'zero preallocated',
          'zero preallocated copied', 'standard on a free cluster',
          'standard not copied', 'standard mapped twice',
          'compressed copied', 'unaligned', 'compressed in the header',
          'standard on a table', 'past the end', 'reserved bits', 'random')
#: Stream kinds: qemu's own (4 KiB window), far back-references, stored or
#: raw blocks, a deflate distance code alone in the next cluster.
KINDS = ('qemu', 'long references', 'stored', 'far distance code')
EMPHASES = {
    # roles, kinds, shared entries, entry states
    'spans': (('compressed', 'compressed', 'data', 'free'), KINDS,
              (0, 2), (0, 1)),
    'back-references': (('compressed', 'compressed', 'data', 'free'),
                        ('long references', 'far distance code', 'stored'),
                        (0, 2), (0,)),
    'shared': (('compressed', 'data', 'free'), KINDS, (2, 16, 200, 1000),
               (0, 1)),
    'states': (('compressed', 'data', 'data', 'free'), KINDS, (0, 2),
               (1, 1, 2, 6)),
}


def compressed_payload(rnd, method, kind):
    """One compressed cluster of ``kind``: its bytes and its class."""
    if kind == 'far distance code' and method == 'zlib':
        head, tail, _content = cstreams.deflate_far_match(CS, rnd)
        return head + tail, 'far distance code'
    if kind in ('stored', 'far distance code'):
        content = rnd.randbytes(CS)
        frame = (cstreams.stored_deflate if method == 'zlib'
                 else cstreams.raw_zstd)
        return frame(content), 'stored blocks'
    if kind == 'qemu':
        content = rnd.randbytes(CS // 4) + bytes(CS - CS // 4)
        return qb.compress(content, method), None
    # Blocks repeated from as far back as the window allows.
    block = rnd.randbytes(rnd.choice([300, 4096, 20000, 32000]))
    content = (block * (CS // len(block) + 1))[:CS]
    if method == 'zstd':
        return zstandard.ZstdCompressor(
            level=rnd.choice([1, 3, 19])).compress(content), 'long references'
    deflate = zlib.compressobj(rnd.choice([1, 6, 9]), zlib.DEFLATED, -15)
    return deflate.compress(content) + deflate.flush(), 'long references'


class _Image:
    """An image under construction, and the classes it exercises."""

    def __init__(self, draw, emphasis, state=None):
        self.draw = draw
        self.forced_state = state
        # Bytes and bulk choices from a seeded generator: drawn one by one
        # they would overrun what hypothesis draws for an example.
        self.rnd = random.Random(draw(st.integers(0, 2 ** 32 - 1)))
        self.roles_choice, self.kinds, self.shared, self.states = (
            EMPHASES[emphasis])
        self.method = draw(st.sampled_from(['zlib', 'zstd']))
        version = (3 if self.method == 'zstd'
                   else draw(st.sampled_from([3, 3, 3, 2])))
        guests = draw(st.sampled_from([64, 1024]))
        self.b = qb.Qcow2Builder(guests * CS, version=version,
                                 compression=self.method)
        self.guests = iter(self.rnd.sample(range(guests), guests))
        self.classes = set()
        self.payloads = []
        self.used = {0: 'header', 1: 'refcount'}
        self.b.refcounts_at(1)
        clusters = list(range(2, HOSTS))
        l1 = draw(st.sampled_from([2, 2, HOSTS // 2, HOSTS - 1]))
        clusters.remove(l1)
        self.b.l1_at(l1)
        self.table = draw(st.sampled_from(clusters))
        clusters.remove(self.table)
        self.b.l2(0, self.table)
        self.used.update({l1: 'L1', self.table: 'L2'})
        self.roles = {c: draw(st.sampled_from(self.roles_choice))
                      for c in clusters}
        self.prefixes = {}

    def role(self, cluster):
        return (self.used.get(cluster) or self.roles.get(cluster)
                or 'past the end')

    def entry(self, word):
        guest = next(self.guests, None)
        if guest is not None:
            self.b.entry(guest, word)

    def build(self):
        draw = self.draw
        for cluster, role in self.roles.items():
            if role == 'free':
                self.b.put(cluster * CS, self.rnd.randbytes(CS))
        at = 0
        for cluster in sorted(self.roles):
            if self.roles[cluster] == 'compressed':
                at = self.pack(cluster, max(at, cluster * CS + draw(
                    st.sampled_from([0, 512, 1000, CS // 2, CS - 600,
                                     CS - 5]))))
        for cluster in sorted(self.roles):
            if self.roles[cluster] == 'data' and draw(st.integers(0, 5)):
                content = self.prefixes.get(cluster, b'')
                content += self.rnd.randbytes(CS - len(content))
                self.b.put(cluster * CS, content)
                self.entry(qb.COPIED | cluster * CS)
        if self.payloads:
            ways = ['same', 'one more sector', 'the most']
            if not draw(st.integers(0, 3)):
                # Into the middle of a stream: a corrupt cluster.
                ways.append('mid-stream')
            for _ in range(draw(st.sampled_from(self.shared))):
                self.share(ways)
        if self.forced_state:
            self.state(self.forced_state)
        for _ in range(draw(st.sampled_from(self.states))):
            self.state(draw(st.sampled_from(STATES)))
        return self.b.build()

    def pack(self, cluster, at):
        """Packed compressed clusters from ``at``, as qemu packs them."""
        for _ in range(self.draw(st.integers(1, 3))):
            payload, kind = compressed_payload(
                self.rnd, self.method, self.draw(st.sampled_from(self.kinds)))
            if kind:
                self.classes.add(kind)
            self.classes.add('behind' if at // CS < self.table else 'ahead')
            self.place(at, payload)
            sectors = -(-(at % 512 + len(payload)) // 512)
            extra = self.draw(st.sampled_from([0, 0, 1, MOST_SECTORS]))
            sectors = min(sectors + extra, MOST_SECTORS)
            self.entry(qb.COMPRESSED | (sectors - 1) << 54 | at)
            self.payloads.append((at, sectors))
            at += len(payload)
            if at // CS != cluster:
                break
        return at

    def place(self, at, payload):
        """Write a payload; its tail goes into the clusters after."""
        first = at // CS
        head = min(len(payload), (first + 1) * CS - at)
        self.b.put(at, payload[:head])
        tail, cluster = payload[head:], first + 1
        while tail:
            role = self.role(cluster)
            self.classes.add('span into ' + (
                'a table' if role in TABLES else role))
            if role == 'data':
                # The data cluster's bytes start with the payload's tail.
                self.prefixes[cluster] = tail[:CS]
            elif role not in TABLES:
                self.b.put(cluster * CS, tail[:CS])
            tail, cluster = tail[CS:], cluster + 1

    def share(self, ways):
        # From the random stream, not drawn: a thousand of them would
        # overrun what hypothesis draws for one example.
        at, sectors = self.rnd.choice(self.payloads)
        how = self.rnd.choice(ways)
        if how == 'one more sector':
            sectors = min(sectors + 1, MOST_SECTORS)
        elif how == 'the most':
            sectors = MOST_SECTORS
        elif how == 'mid-stream':
            at += 512
        self.classes.add('shared sectors')
        self.entry(qb.COMPRESSED | (sectors - 1) << 54 | at)

    def state(self, state):
        self.classes.add('state: ' + state)
        free = [c for c, r in self.roles.items() if r != 'compressed']
        host = self.rnd.choice(free or [HOSTS + 2]) * CS
        tables = [c for c, r in self.used.items() if r in TABLES]
        words = {
            'unallocated': 0,
            'unallocated copied': qb.COPIED,
            'zero': qb.ZERO,
            'zero preallocated': qb.ZERO | host,
            'zero preallocated copied': qb.COPIED | qb.ZERO | host,
            'standard on a free cluster': qb.COPIED | host,
            'standard not copied': host,
            'standard mapped twice': qb.COPIED | host,
            'unaligned': qb.COPIED | host + 512,
            'compressed in the header': qb.COMPRESSED | 4 << 54 | 1024,
            'standard on a table': qb.COPIED | self.rnd.choice(tables) * CS,
            'past the end': qb.COPIED | (HOSTS + 3) * CS,
            'reserved bits': qb.COPIED | 0x3f << 56 | host,
            'random': self.rnd.getrandbits(64),
        }
        if state == 'compressed copied':
            at, sectors = (self.payloads[0] if self.payloads
                           else (3 * CS, 1))
            word = qb.COPIED | qb.COMPRESSED | (sectors - 1) << 54 | at
        else:
            word = words[state]
        if state == 'standard mapped twice':
            self.entry(word)
        self.entry(word)


class Crafted:
    """A crafted image: its bytes, the chunks to feed, its classes.

    Shown by its digest: hypothesis prints what it drew when a test
    fails, and a megabyte of bytes would bury the rest.
    """

    def __init__(self, data, chunks, classes):
        self.data = data
        self.chunks = chunks
        self.classes = classes

    def __repr__(self):
        return 'Crafted(%d bytes, sha256 %s, chunks %s, %s)' % (
            len(self.data), hashlib.sha256(self.data).hexdigest(),
            self.chunks, sorted(self.classes))


@st.composite
def crafted(draw, emphasis, state=None):
    """A :class:`Crafted` image (with an entry in ``state``, if given)."""
    image = _Image(draw, emphasis, state)
    data = image.build()
    chunks = draw(st.lists(st.sampled_from(CHUNKS), min_size=1, max_size=3))
    return Crafted(data, chunks, image.classes)


class TestQcow2CraftedDifferential(
        qcow2_differential.Qcow2DifferentialTestCase):

    def fuzz(self, emphasis, count, state=None):
        def one(data):
            image = data.draw(crafted(emphasis, state))
            return (sorted(image.classes) + ['all'],
                    self.check(image.data, image.chunks))

        return self.run_examples(qcow2_differential.examples(count), one)

    def assertCompared(self, tally, *classes):
        """Not vacuous: inputs of each class reached qemu-img's disk."""
        self.report(tally)
        for what in classes:
            self.assertGreater(tally[what, 'same'], 0, what)

    def test_spans(self):
        tally = self.fuzz('spans', 60)
        self.assertCompared(tally, 'span into data', 'span into a table',
                            'span into free', 'span into compressed',
                            'ahead', 'behind')

    def test_back_references(self):
        tally = self.fuzz('back-references', 50)
        self.assertCompared(tally, 'long references', 'far distance code',
                            'stored blocks')

    def test_shared_sectors(self):
        tally = self.fuzz('shared', 40)
        self.assertCompared(tally, 'shared sectors')

    def test_entry_states(self):
        tally = self.fuzz('states', 60)
        # Every state, even one the draws missed: a few images with it.
        for state in STATES:
            if not any(what == 'state: ' + state for what, _ in tally):
                tally += self.fuzz('states', 3, state)
        self.assertCompared(tally, 'all')
        seen = {what for what, _outcome in tally}
        self.assertEqual([], [s for s in STATES if 'state: ' + s not in seen])
