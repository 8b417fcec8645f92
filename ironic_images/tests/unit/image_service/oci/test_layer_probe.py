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

import gzip
import lzma
import os

import zstandard

from ironic_images.image_service.oci import layer_probe
from ironic_images.tests import base
from ironic_images.tests.unit.sink import qcow2_builder
from ironic_images.tests.unit.sink import test_untar

# A qcow2 header, its L1 table at cluster 1, and zero clusters after.
QCOW2 = qcow2_builder.header().ljust(4 * 65536, b'\0')
RAW = os.urandom(512 * 1024)


def probe(blob, head=layer_probe.HEAD_BYTES):
    return layer_probe.probe(blob[:head], len(blob) <= head, 'href')


class TestProbe(base.TestCase):

    def test_plain_files(self):
        self.assertEqual(layer_probe.Probe(None, None, None, 'qcow2'),
                         probe(QCOW2))
        self.assertEqual(layer_probe.Probe(None, None, None, 'raw'),
                         probe(RAW))

    def test_compressed(self):
        for name, compress in (('gzip', gzip.compress),
                               ('xz', lzma.compress),
                               ('zstd', zstandard.compress)):
            self.assertEqual(layer_probe.Probe(name, None, None, 'qcow2'),
                             probe(compress(QCOW2)), name)

    def test_container_disk_layer(self):
        layer = test_untar.make_tar([('disk', 'dir'),
                                     ('disk/disk.qcow2', QCOW2)])
        for blob, compression in ((layer, None),
                                  (gzip.compress(layer), 'gzip')):
            self.assertEqual(
                layer_probe.Probe(compression, 'tar', 'disk/disk.qcow2',
                                  'qcow2'), probe(blob, 4096))

    def test_decoding_stops_early(self):
        # 64 MiB of zeros in a small gzip head: decoding stops once the
        # disk's first bytes are seen, far before the end.
        blob = gzip.compress(bytes(64 * 1024 * 1024))
        self.assertEqual(layer_probe.Probe('gzip', None, None, 'raw'),
                         probe(blob))

    def test_refused_archive_tells_what_it_can(self):
        layer = test_untar.make_tar([('../disk.raw', RAW)])
        self.assertEqual(layer_probe.Probe(None, 'tar'), probe(layer))

    def test_empty(self):
        self.assertEqual(layer_probe.Probe(), probe(b''))
