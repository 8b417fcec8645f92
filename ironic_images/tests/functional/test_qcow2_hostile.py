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

"""Crafted qcow2 images served by nginx: qemu-img's disk, bounded memory.

Images that qemu-img opens and converts, made with the unit tests'
builder to attack the stream decoder: compressed bytes that run on into a
data cluster or a table already passed, and a 640 KiB image whose 49152
compressed entries share the same bytes. ``fetch_to_raw`` must stream
each to exactly the raw disk ``qemu-img convert`` makes of it, the last
one in a child process whose peak memory is measured (and capped, so that
a decoder that holds too much fails the test rather than the machine).
"""

import json
import os
import resource
import subprocess
import sys

from oslo_utils import units
import testtools.content

from ironic_images.tests.functional import qcow2_variants as variants
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.unit.sink import compressed_streams as cstreams
from ironic_images.tests.unit.sink import qcow2_builder as qb
from ironic_images.tests.unit.sink import test_qcow2_stream_hostile as hostile

CS = 64 * units.Ki
PER_TABLE = CS // 8
#: The crafted image's compressed entries: six L2 tables of them.
SHARED_ENTRIES = 6 * PER_TABLE
#: A child whose address space grows past this fails (the decoder before
#: the fix needed several GiB for the shared-bytes image).
CHILD_ADDRESS_SPACE = 2 * units.Gi
#: What a fetch adds to the peak RSS of a child beyond the decoder's own
#: bound: the transfer's buffers, threads' stacks and malloc arenas.
FETCH_OVERHEAD = 48 * units.Mi

_CHILD = '''
import json, resource, sys
from ironic_images import conf
conf.CONF([], project='ironic-images')
from ironic_images.fetch import fetcher
from ironic_images.qemu import convert

def refuse(*args, **kwargs):
    raise AssertionError('converted by qemu-img, not streamed')

convert.convert_image = refuse
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fetched = fetcher.fetch_to_raw(None, sys.argv[1], sys.argv[2])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({'before': before * 1024, 'after': after * 1024,
                  'format': fetched.format, 'size': fetched.size}))
'''


def _cap_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE,) * 2)


def spanning_image(kind):
    """A compressed cluster whose bytes run into a placed data cluster.

    Clusters: 0 header, 1 L1, 2 refcounts, 3 L2 table 0 (guest 1 at 6),
    5 the compressed bytes' start, 6 data (the rest of them), 7 L2 table 1
    (guest ``PER_TABLE``: the compressed cluster).

    :param kind: ``'far-match'`` (the last deflate distance code in
        cluster 6), ``'stored'`` (deflate stored blocks) or ``'zstd'``
        (raw zstd blocks).
    :returns: the builder.
    """
    method = 'zstd' if kind == 'zstd' else 'zlib'
    b = qb.Qcow2Builder((PER_TABLE + 2) * CS, compression=method)
    b.refcounts_at(2)
    b.l2(0, 3)
    b.l2(1, 7)
    if kind == 'far-match':
        head, tail, _content = cstreams.deflate_far_match(CS)
    else:
        frame = (cstreams.raw_zstd if kind == 'zstd'
                 else cstreams.stored_deflate)
        payload = frame(os.urandom(CS))
        head, tail = payload[:1000], payload[1000:]
    b.compressed_over(PER_TABLE, 6 * CS - len(head), head,
                      len(head) + len(tail))
    b.data(1, 6, (tail + os.urandom(CS))[:CS])
    b.data(2, 8)
    return b


def shared_bytes_image():
    """640 KiB: ``SHARED_ENTRIES`` compressed entries on two clusters.

    Clusters: 0 header, 1 L1, 2 refcounts, 3 to 8 the L2 tables, 9 a
    compressed cluster of zeros and one of data, each entry claiming the
    most bytes it can (two clusters, past the end of the file). One entry
    in 1024 maps the data.
    """
    b = qb.Qcow2Builder(SHARED_ENTRIES * CS)
    b.refcounts_at(2)
    for number in range(SHARED_ENTRIES // PER_TABLE):
        b.l2(number, 3 + number)
    zeros, data = 9 * CS + 512, 9 * CS + 8192
    b.put(zeros, qb.compress(bytes(CS), 'zlib'))
    content = qb.compressible(CS)
    b.put(data, qb.compress(content, 'zlib'))
    for guest in range(SHARED_ENTRIES):
        if guest % 1024 == 5:
            b.entry(guest, qb.compressed_entry(data, 2 * CS - 8192, 16))
        else:
            b.entry(guest, qb.compressed_entry(zeros, 2 * CS - 512, 16))
    return b.build(length=10 * CS)


class TestHostileImages(variants.Qcow2StreamTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(nginx.NginxFixture(self.root))

    def serve(self, name, image):
        with open(self.path(name), 'wb') as f:
            f.write(image)
        return self.path(name), self.server.url_for(name)

    def test_compressed_bytes_in_a_placed_cluster(self):
        for kind in ('far-match', 'stored', 'zstd'):
            b = spanning_image(kind)
            image = b.build()
            path, url = self.serve(kind + '.qcow2', image)
            expected = self.reference(path)
            # What the guest reads there is the file's bytes, not zeros.
            with open(expected, 'rb') as f:
                f.seek(PER_TABLE * CS)
                read = f.read(CS)
            method = 'zstd' if kind == 'zstd' else 'zlib'
            self.assertEqual(read, cstreams.inflate_as_qemu(
                image, b.entries[PER_TABLE], 16, method), kind)
            cut = bytearray(image)
            cut[6 * CS:7 * CS] = bytes(CS)
            self.assertNotEqual(read, cstreams.inflate_as_qemu(
                bytes(cut), b.entries[PER_TABLE], 16, method), kind)
            self.fetch_to_raw(url, kind)
            self.assertStreamed()
            self.assertSameRaw(expected, self.dest(kind))

    def fetch_in_child(self, url, name):
        """fetch_to_raw in a child process: its peak RSS growth."""
        env = dict(os.environ, MALLOC_ARENA_MAX='4',
                   PYTHONPATH=os.pathsep.join(sys.path))
        done = subprocess.run(
            [sys.executable, '-c', _CHILD, url, self.dest(name)],
            capture_output=True, text=True, env=env, timeout=600,
            stdin=subprocess.DEVNULL, preexec_fn=_cap_address_space)
        self.assertEqual(0, done.returncode, done.stderr[-3000:])
        report = json.loads(done.stdout.splitlines()[-1])
        self.assertEqual('raw', report['format'])
        return report['after'] - report['before']

    def assertBoundedFetch(self, url, name, entries):
        grown = self.fetch_in_child(url, name)
        bound = hostile.memory_bound(CS, entries) + FETCH_OVERHEAD
        self.addDetail('peak RSS growth of ' + name, testtools.content.
                       text_content('%d bytes (bound %d)' % (grown, bound)))
        if os.environ.get('IRONIC_IMAGES_SHOW_MEMORY'):
            sys.stderr.write('%s: peak RSS grew %.1f MiB (bound %.1f MiB)\n'
                             % (name, grown / units.Mi, bound / units.Mi))
        self.assertLess(grown, bound, name)
        return grown

    def test_entries_sharing_compressed_bytes(self):
        path, url = self.serve('shared.qcow2', shared_bytes_image())
        self.assertEqual(640 * units.Ki, os.path.getsize(path))
        expected = self.reference(path)
        self.assertBoundedFetch(url, 'shared', SHARED_ENTRIES)
        self.assertSameRaw(expected, self.dest('shared'))

    def test_memory_of_images_as_qemu_writes_them(self):
        for variant in ('zstd-many', 'resized', 'random-order'):
            path = self.make(variant)
            expected = self.reference(path)
            # At most one allocated L2 entry a guest cluster.
            entries = variants.qcow2_fields(path)['size'] // CS
            self.assertBoundedFetch(
                self.server.url_for(os.path.basename(path)), variant,
                entries)
            self.assertSameRaw(expected, self.dest(variant))
