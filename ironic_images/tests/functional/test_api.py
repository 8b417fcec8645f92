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
"""The Nova-style ``api.API`` facade against a real Glance.

Glance images and ``file://`` images go through the same calls; the
Glance ones are tagged per test as in :mod:`.test_glance`.
"""

import hashlib
import io
import os

from oslo_context import context as oslo_context

from ironic_images import api
from ironic_images import exception
from ironic_images.tests.functional import test_glance

DATA = test_glance.DATA
MISSING_ID = test_glance.MISSING_ID


class TestAPI(test_glance.GlanceTestCase):

    def setUp(self):
        super().setUp()
        self.api = api.API()

    def file_image(self, data=b'file image data'):
        path = os.path.join(self.images_dir, 'disk.img')
        with open(path, 'wb') as f:
            f.write(data)
        return 'file://' + path

    def assert_dir_empty(self):
        self.assertEqual([], os.listdir(self.dest_dir))

    # --- get and get_all ---

    def test_get(self):
        image = self.make_image(DATA, os_distro='x')
        info = self.api.get(None, image['id'])
        self.assertEqual((image['id'], 'active', len(DATA)),
                         (info['id'], info['status'], info['size']))
        self.assertEqual('x', info['properties']['os_distro'])
        self.assertEqual(hashlib.sha512(DATA).hexdigest(),
                         info['properties']['os_hash_value'])
        self.assertIsNone(info['updated_at'].tzinfo)
        self.assertNotIn('direct_url', info)
        info = self.api.get(None, 'glance://' + image['id'],
                            include_locations=True, show_deleted=False)
        self.assertEqual('file://' + self.glance.image_path(image['id']),
                         info['direct_url'])

    def test_get_not_active_and_missing(self):
        # Unlike show(), get() describes an image whatever its status.
        image = self.make_image()
        self.assertEqual('queued', self.api.get(None, image['id'])['status'])
        self.assertRaises(exception.ImageNotFound, self.api.get, None,
                          MISSING_ID)

    def test_get_other_scheme(self):
        info = self.api.get(None, self.file_image(b'12345'))
        self.assertEqual(5, info['size'])

    def test_get_with_user_token(self):
        image = self.make_image(b'abc')
        context = oslo_context.RequestContext(auth_token='api-user-token')
        self.api.get(context, image['id'])
        tokens = [e['token'] for e in self.glance.requests_log(count=1)
                  if image['id'] in e['path']]
        self.assertEqual(['api-user-token'], tokens)

    def test_get_all_filters_and_paging(self):
        ids = [self.make_image(b'%d' % i, name='api-%d' % i)['id']
               for i in range(4)]
        images = self.api.get_all(None, ironic_images_test=self.mark,
                                  page_size=1)
        self.assertEqual(sorted(ids), sorted(i['id'] for i in images))
        pages = [e for e in self.glance.requests_log(count=4)
                 if e['path'] == '/v2/images']
        self.assertGreaterEqual(len(pages), 4)
        images = self.api.get_all(None, filters={
            'ironic_images_test': self.mark, 'name': 'api-2'})
        self.assertEqual([ids[2]], [i['id'] for i in images])
        images = self.api.get_all(None, ironic_images_test=self.mark,
                                  limit=2, sort_key='name', sort_dir='desc')
        self.assertEqual(['api-3', 'api-2'], [i['name'] for i in images])

    # --- create, update, delete ---

    def test_create_update_delete(self):
        info = {'name': 'api-created', 'disk_format': 'raw',
                'container_format': 'bare',
                'properties': {'ironic_images_test': self.mark, 'a': '1',
                               'b': '2'}}
        queued = self.api.create(None, info)
        self.assertEqual('queued', queued['status'])
        created = self.api.create(None, info, data=io.BytesIO(DATA))
        self.assertEqual('active', created['status'])
        self.assertEqual(DATA, self.read(self.glance.image_path(
            created['id'])))

        # Upload through update(), and change a property.
        updated = self.api.update(None, queued['id'],
                                  {'properties': {'a': 'one'}},
                                  data=b'uploaded later')
        self.assertEqual(('active', 'one', '2'),
                         (updated['status'], updated['properties']['a'],
                          updated['properties']['b']))
        stored = self.glance.get_image(queued['id'])
        self.assertEqual(('one', '2'), (stored['a'], stored['b']))

        self.api.update(None, 'glance://' + queued['id'],
                        {'properties': {'a': 'uno',
                                        'ironic_images_test': self.mark}},
                        purge_props=True)
        stored = self.glance.get_image(queued['id'])
        self.assertEqual('uno', stored['a'])
        self.assertNotIn('b', stored)

        self.assertTrue(self.api.delete(None, queued['id']))
        self.assertIsNone(self.glance.get_image(queued['id']))
        self.assertRaises(exception.ImageNotFound, self.api.delete, None,
                          queued['id'])
        self.assertRaises(exception.ImageNotFound, self.api.update, None,
                          queued['id'], {'name': 'x'})

    def test_read_only_schemes(self):
        href = self.file_image()
        for call in (lambda: self.api.update(None, href, {'name': 'x'}),
                     lambda: self.api.delete(None, href),
                     lambda: self.api.update(
                         None, 'https://127.0.0.1:1/disk.img', {}, b'x')):
            error = self.assertRaises(exception.OperationNotSupported, call)
            self.assertIn('not supported', str(error))
        self.assertTrue(os.path.exists(href[len('file://'):]))

    # --- download ---

    def test_download_to_file_object(self):
        image = self.make_image(DATA)
        out = io.BytesIO()
        self.assertIsNone(self.api.download(None, image['id'], data=out))
        self.assertEqual(DATA, out.getvalue())

    def test_download_to_path(self):
        image = self.make_image(DATA)
        dest = os.path.join(self.dest_dir, 'disk.raw')
        self.assertIsNone(self.api.download(None, 'glance://' + image['id'],
                                            dest_path=dest))
        self.assertEqual(DATA, self.read(dest))
        self.assertEqual(['disk.raw'], os.listdir(self.dest_dir))

    def test_download_iterator(self):
        image = self.make_image(DATA)
        chunks = self.api.download(None, image['id'])
        received = list(chunks)
        self.assertGreater(len(received), 1)
        self.assertTrue(all(isinstance(c, bytes) for c in received))
        self.assertEqual(DATA, b''.join(received))

    def test_download_iterator_from_direct_url(self):
        self.config(allowed_direct_url_schemes=['file'], group='glance')
        self.config(allowed_paths=[self.images_dir, self.glance.data_dir],
                    group='file')
        image = self.make_image(DATA)
        self.assertEqual(DATA, b''.join(self.api.download(None, image['id'])))
        dest = os.path.join(self.dest_dir, 'disk.raw')
        self.api.download(None, image['id'], dest_path=dest)
        self.assertEqual(DATA, self.read(dest))
        self.assertEqual(1, os.stat(dest).st_nlink)
        self.assertNotIn(('GET', '/v2/images/%s/file' % image['id']),
                         self.api_calls(count=2))

    def test_download_iterator_closed_early(self):
        image = self.make_image(DATA)
        chunks = self.api.download(None, image['id'])
        self.assertTrue(next(chunks))
        chunks.close()
        self.assertEqual([], list(chunks))

    def test_download_corrupted_to_path_leaves_nothing(self):
        image = self.make_image(DATA)
        test_glance.corrupt(self.glance.image_path(image['id']))
        dest = os.path.join(self.dest_dir, 'disk.raw')
        self.assertRaises(exception.ImageChecksumError, self.api.download,
                          None, image['id'], dest_path=dest)
        self.assert_dir_empty()

    def test_download_corrupted_to_file_object(self):
        image = self.make_image(DATA)
        test_glance.corrupt(self.glance.image_path(image['id']))
        self.assertRaises(exception.ImageChecksumError, self.api.download,
                          None, image['id'], data=io.BytesIO())

    def test_download_corrupted_iterator_raises_at_the_end(self):
        image = self.make_image(DATA)
        test_glance.corrupt(self.glance.image_path(image['id']),
                            offset=len(DATA) - 10)
        chunks = self.api.download(None, image['id'])
        received = []

        def consume():
            for chunk in chunks:
                received.append(chunk)

        self.assertRaises(exception.ImageChecksumError, consume)
        # Every byte came, but the iterator never ended normally.
        self.assertEqual(len(DATA), sum(len(c) for c in received))

    def test_download_errors_before_data(self):
        queued = self.make_image()
        dest = os.path.join(self.dest_dir, 'disk.raw')
        self.assertRaises(exception.ImageNotFound, self.api.download, None,
                          MISSING_ID)
        self.assertRaises(exception.ImageNotFound, self.api.download, None,
                          MISSING_ID, dest_path=dest)
        self.assertRaises(exception.ImageUnacceptable, self.api.download,
                          None, queued['id'])
        self.assert_dir_empty()
        self.assertRaises(exception.OperationNotSupported, self.api.download,
                          None, MISSING_ID, data=io.BytesIO(),
                          dest_path=dest)

    def test_download_other_scheme(self):
        href = self.file_image(b'file bytes')
        dest = os.path.join(self.dest_dir, 'copy')
        self.api.download(None, href, dest_path=dest)
        self.assertEqual(b'file bytes', self.read(dest))
        self.assertEqual(b'file bytes', b''.join(self.api.download(None,
                                                                   href)))
