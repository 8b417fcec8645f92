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

"""Tests of fetch, inspect and convert on local files (no server)."""

import gzip
import hashlib
import json
import os

import fixtures
import zstandard

from ironic_images.cmd import image_commands
from ironic_images.tests.functional import images
from ironic_images.tests.unit.cmd import cli_base

MIB = 1024 * 1024
QCOW2 = images.qcow2_header(MIB) + bytes(2 * 65536)
BACKED_QCOW2 = images.qcow2_header(MIB, backing_offset=200) + bytes(65536)


class LocalImagesTestCase(cli_base.CommandTestCase):

    def setUp(self):
        super().setUp()
        self.home_images = self.useFixture(fixtures.TempDir()).path

    def put(self, name, data):
        path = os.path.join(self.home_images, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path


class InspectTestCase(LocalImagesTestCase):

    def test_compressed_local_file_is_decompressed(self):
        # As file:// does: the same pipeline, not the bytes as they are.
        path = self.put('disk.qcow2.zst', zstandard.compress(QCOW2))
        code, out, err = self.run_main('inspect', path, '-f', 'json',
                                       config=False)
        self.assertEqual((0, ''), (code, err))
        report = json.loads(out)
        self.assertEqual(('qcow2', MIB, 'zstd', len(QCOW2)),
                         (report['format'], report['virtual_size'],
                          report['compression'], report['size']))
        self.assertEqual('accepted', report['verdict'])

    def test_same_answer_as_file_href(self):
        path = self.put('disk.qcow2.gz', gzip.compress(QCOW2))
        self.write_config('[file]\nallowed_paths = %s\n' % self.home_images)
        code, local, err = self.run_main('inspect', path, '-f', 'json')
        code, href, err = self.run_main('inspect', 'file://' + path, '-f',
                                        'json')
        local, href = json.loads(local), json.loads(href)
        del local['image'], href['image']
        self.assertEqual(href, local)

    def test_plain_file_read_in_place(self):
        path = self.put('disk.qcow2', QCOW2)
        code, out, err = self.run_main('inspect', path, config=False)
        self.assertEqual((0, ''), (code, err))
        lines = out.splitlines()
        self.assertEqual(['image', path], lines[0].split())
        self.assertEqual(['format', 'qcow2'], lines[1].split())
        self.assertEqual(['verdict', 'accepted'], lines[-1].split())

    def test_refused_image_is_an_answer(self):
        path = self.put('backed.qcow2', BACKED_QCOW2)
        code, out, err = self.run_main('inspect', path, config=False)
        self.assertEqual((1, ''), (code, err))
        self.assertIn('safety             failed', out)
        self.assertIn('verdict       refused: backing_file check failed',
                      out)

    def test_declared_format_must_match(self):
        path = self.put('disk.qcow2', QCOW2)
        code, out, err = self.run_main('inspect', path, '--disk-format',
                                       'raw', '-f', 'json', config=False)
        self.assertEqual((1, ''), (code, err))
        statuses = {c['name']: c['status']
                    for c in json.loads(out)['checks']}
        self.assertEqual('failed', statuses['format_match'])

    def test_checksum_of_a_local_file_is_verified(self):
        path = self.put('disk.qcow2', QCOW2)
        good = hashlib.sha256(QCOW2).hexdigest()
        code, out, err = self.run_main('inspect', path, '--checksum', good,
                                       '-c', 'checksum', '-f', 'value',
                                       config=False)
        self.assertEqual((0, 'sha256:%s\n' % good, ''), (code, out, err))
        code, out, err = self.run_main('inspect', path, '--checksum',
                                       '0' * 64, config=False)
        self.assertEqual((1, ''), (code, out))
        self.assertOneLineError(err, 'does not match')

    def test_is_plain_file(self):
        self.assertTrue(image_commands.is_plain_file(
            self.put('a', QCOW2)))
        self.assertFalse(image_commands.is_plain_file(
            self.put('b', zstandard.compress(QCOW2))))
        self.assertFalse(image_commands.is_plain_file(self.home_images))


class FetchTestCase(LocalImagesTestCase):

    def test_fetch_a_compressed_local_file(self):
        path = self.put('disk.qcow2.zst', zstandard.compress(QCOW2))
        code, out, err = self.run_main('fetch', path, self.dest,
                                       config=False)
        self.assertEqual((0, ''), (code, err))
        self.assertEqual(QCOW2, self.read(self.dest))
        self.assertEqual('Wrote %s (qcow2, 1.0 MiB virtual, decompressed '
                         'from zstd)\n' % self.dest, out)

    def test_fetch_as_json(self):
        path = self.put('disk.qcow2', QCOW2)
        code, out, err = self.run_main('fetch', path, self.dest, '-f',
                                       'json', config=False)
        fields = json.loads(out)
        self.assertEqual({'dest': self.dest, 'href': path,
                          'format': 'qcow2', 'source_format': 'qcow2',
                          'size': len(QCOW2), 'virtual_size': MIB,
                          'compression': None, 'checksum': None,
                          'member': None}, fields)

    def test_declared_disk_format(self):
        path = self.put('disk.qcow2', QCOW2)
        code, out, err = self.run_main('fetch', path, self.dest,
                                       '--disk-format', 'raw',
                                       config=False)
        self.assertEqual((1, ''), (code, out))
        self.assertOneLineError(err, 'format')
        self.assertEqual([], self.out_dir_listing())

    def test_refused_image_leaves_nothing(self):
        path = self.put('backed.qcow2', BACKED_QCOW2)
        code, out, err = self.run_main('fetch', path, self.dest,
                                       config=False)
        self.assertEqual(1, code)
        self.assertOneLineError(err, 'backing')
        self.assertEqual([], self.out_dir_listing())


class ConvertTestCase(LocalImagesTestCase):

    def test_convert_takes_a_local_file(self):
        code, out, err = self.run_main('convert', 'https://h/x.qcow2',
                                       self.dest, '-O', 'raw')
        self.assertEqual((2, ''), (code, out))
        self.assertOneLineError(err, 'not a local file', 'fetch')
        code, out, err = self.run_main('convert', 'nope.qcow2', self.dest,
                                       '-O', 'raw')
        self.assertEqual(2, code)
        self.assertOneLineError(err, 'nope.qcow2: no such file')

    def test_refused_source(self):
        path = self.put('backed.qcow2', BACKED_QCOW2)
        for source in (path, self.put('backed.qcow2.gz',
                                      gzip.compress(BACKED_QCOW2))):
            code, out, err = self.run_main('convert', source, self.dest,
                                           '-O', 'raw', config=False)
            self.assertEqual((1, ''), (code, out), source)
            self.assertOneLineError(err, 'backing')
        self.assertEqual([], self.out_dir_listing())
