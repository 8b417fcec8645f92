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
"""The Glance driver against a real Glance (see :mod:`.servers.glance`).

Every test goes through ``get_image_service`` with ``[glance]auth_type =
none`` and ``endpoint_override``, as a deployment without Keystone would.
The tests of a class share one Glance: each tags its images with its own
``ironic_images_test`` property and lists only those.
"""

import datetime
import hashlib
import io
import os
import uuid

import fixtures
from oslo_context import context as oslo_context

from ironic_images.cache import cache
from ironic_images import exception
from ironic_images import image_cache
from ironic_images import image_service
from ironic_images.image_service import glance as glance_service
from ironic_images.tests import base
from ironic_images.tests.functional.servers import base as servers_base
from ironic_images.tests.functional.servers import glance

DATA = os.urandom(3 * 1024 * 1024 + 123)
MISSING_ID = '0b5c1b8e-1f1c-4b54-9b8c-1f7e2b0c9d4e'


def corrupt(path, offset=1000):
    """Change bytes of a stored image behind Glance's checksums."""
    with open(path, 'r+b') as f:
        f.seek(offset)
        original = f.read(4)
        f.seek(offset)
        f.write(bytes(b ^ 0xff for b in original))


class GlanceTestCase(base.TestCase):
    """A real Glance shared by the tests of the class, and its config."""

    def setUp(self):
        super().setUp()
        self.glance = self.useFixture(
            glance.GlanceFixture(share_with=type(self)))
        self.config(auth_type='none', endpoint_override=self.glance.url,
                    group='glance')
        # Small buffers: DATA spans many of them.
        self.config(chunk_size=64 * 1024, group='download')
        self.glance.reset_log()
        # Isolates this test's images from those of the other tests.
        self.mark = uuid.uuid4().hex
        self.dest_dir = self.useFixture(fixtures.TempDir()).path

    def make_image(self, data=None, **properties):
        """Create an image with plain requests, tagged for this test.

        Those requests are not in :meth:`api_calls`.
        """
        properties.setdefault('name', 'test-image')
        properties['ironic_images_test'] = self.mark
        return self.glance.create_image(data, **properties)

    def api_calls(self, count=0):
        """(method, path) of the requests Glance received, in order."""
        return [(e['method'], e['path'])
                for e in self.glance.requests_log(count=count)]

    def read(self, path):
        with open(path, 'rb') as f:
            return f.read()


class TestGlanceService(GlanceTestCase):

    def service(self, href=MISSING_ID, context=None):
        return image_service.get_image_service(href, context=context)

    # --- hrefs and show ---

    def test_hrefs_select_the_glance_driver(self):
        image = self.make_image(b'abc')
        # The host is ignored: requests go to the configured endpoint,
        # never to one an href names (nothing listens on this port).
        elsewhere = '127.0.0.1:%d' % servers_base.free_port()
        for href in (image['id'], 'glance://%s' % image['id'],
                     'glance://%s/%s' % (elsewhere, image['id'])):
            service = self.service(href)
            self.assertIsInstance(service, glance_service.GlanceImageService)
            self.assertEqual(image['id'], service.show(href)['id'])
        self.assertEqual(3 * [('GET', '/v2/images/%s' % image['id'])],
                         [c for c in self.api_calls(count=3)
                          if image['id'] in c[1]])
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service().show, 'glance://not-a-uuid')

    def test_show_active(self):
        image = self.make_image(DATA, disk_format='qcow2', os_distro='x',
                                visibility='public')
        info = self.service().show('glance://' + image['id'])
        self.assertEqual(len(DATA), info['size'])
        self.assertEqual(image['id'], info['id'])
        self.assertEqual('active', info['status'])
        updated = info['updated_at']
        self.assertIsInstance(updated, datetime.datetime)
        self.assertIsNone(updated.tzinfo)
        self.assertEqual(image['updated_at'],
                         updated.strftime('%Y-%m-%dT%H:%M:%SZ'))
        props = info['properties']
        self.assertEqual('qcow2', props['disk_format'])
        self.assertEqual('bare', props['container_format'])
        self.assertEqual(hashlib.md5(DATA).hexdigest(), props['checksum'])
        self.assertEqual('sha512', props['os_hash_algo'])
        self.assertEqual(hashlib.sha512(DATA).hexdigest(),
                         props['os_hash_value'])
        # Glance cannot size random bytes as qcow2: whatever it says.
        self.assertEqual(image['virtual_size'], props['virtual_size'])
        self.assertEqual('public', props['visibility'])
        self.assertIn('owner', props)
        self.assertEqual('x', props['os_distro'])
        self.assertEqual(self.mark, props['ironic_images_test'])

    def test_show_not_active(self):
        image = self.make_image()  # no data: queued
        error = self.assertRaises(exception.ImageUnacceptable,
                                  self.service().show, image['id'])
        self.assertIn('queued', str(error))
        self.assertIn(image['id'], str(error))

    def test_show_and_download_deactivated(self):
        image = self.make_image(b'abc')
        self.glance.request('POST', '/v2/images/%s/actions/deactivate'
                            % image['id'], expected=204)
        error = self.assertRaises(exception.ImageUnacceptable,
                                  self.service().show, image['id'])
        self.assertIn('deactivated', str(error))
        self.assertRaises(exception.ImageUnacceptable,
                          self.service().download, image['id'], io.BytesIO())
        self.assertNotIn(('GET', '/v2/images/%s/file' % image['id']),
                         self.api_calls(count=2))

    def test_show_missing(self):
        error = self.assertRaises(exception.ImageNotFound,
                                  self.service().show, MISSING_ID)
        self.assertIn(MISSING_ID, str(error))

    def test_user_token_from_the_context(self):
        image = self.make_image(b'abc')
        context = oslo_context.RequestContext(auth_token='user-token-1')
        self.service(context=context).show(image['id'])
        self.service().show(image['id'])
        tokens = [e['token'] for e in self.glance.requests_log(count=2)
                  if image['id'] in e['path']]
        self.assertEqual('user-token-1', tokens[0])
        # Without a context, the service's own auth (here keystoneauth's
        # "none" plugin, which sends a placeholder).
        self.assertNotEqual('user-token-1', tokens[1])

    # --- create, upload, update, delete ---

    def test_create_without_data(self):
        image = self.service().create(None, {
            'name': 'no-data', 'disk_format': 'qcow2',
            'container_format': 'bare',
            'properties': {'ironic_images_test': self.mark, 'p': 'v'}})
        self.assertEqual('queued', image['status'])
        self.assertIsNone(image['size'])
        stored = self.glance.get_image(image['id'])
        self.assertEqual('no-data', stored['name'])
        self.assertEqual('qcow2', stored['disk_format'])
        self.assertEqual('v', stored['p'])
        self.assertEqual([('POST', '/v2/images')], self.api_calls(count=1)[:1])

    def test_create_with_id_and_tags(self):
        image_id = str(uuid.uuid4())
        image = self.service().create(None, {
            'id': image_id, 'name': 'tagged', 'disk_format': 'raw',
            'container_format': 'bare', 'tags': [self.mark, 'two'],
            'min_disk': 2, 'properties': {'ironic_images_test': self.mark,
                                          'number': 5}})
        self.assertEqual(image_id, image['id'])
        stored = self.glance.get_image(image_id)
        self.assertEqual(sorted([self.mark, 'two']), sorted(stored['tags']))
        self.assertEqual(2, stored['min_disk'])
        # Glance's schema wants user properties as strings.
        self.assertEqual('5', stored['number'])
        self.assertEqual([image_id], [i['id'] for i in
                                      self.service().detail(tag=self.mark)])

    def _check_stored(self, image, data):
        self.assertEqual('active', image['status'])
        self.assertEqual(len(data), image['size'])
        self.assertEqual(hashlib.sha512(data).hexdigest(),
                         image['properties']['os_hash_value'])
        self.assertEqual(data, self.read(self.glance.image_path(
            image['id'])))

    def test_create_with_data(self):
        service = self.service()
        info = {'name': 'with-data', 'disk_format': 'raw',
                'container_format': 'bare',
                'properties': {'ironic_images_test': self.mark}}
        self._check_stored(service.create(None, info, data=DATA), DATA)
        self._check_stored(
            service.create(None, info, data=io.BytesIO(DATA[:5000])),
            DATA[:5000])
        chunks = [DATA[i:i + 65536] for i in range(0, 300000, 65536)]
        self._check_stored(service.create(None, info, data=iter(chunks)),
                           b''.join(chunks))

    def test_upload_to_queued_image(self):
        image = self.make_image()
        updated = self.service().update(None, image['id'], {}, data=DATA)
        self._check_stored(updated, DATA)
        # Glance refuses a second upload: a clear error, not a raw one.
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service().update, None, image['id'], {},
                          data=b'again')
        self.assertEqual(DATA, self.read(self.glance.image_path(
            image['id'])))

    def test_create_invalid(self):
        error = self.assertRaises(
            exception.ImageRefValidationFailed, self.service().create, None,
            {'name': 'bad', 'disk_format': 'no-such-format'})
        self.assertIn('400', str(error))

    def test_update_without_purge_props(self):
        image = self.make_image(b'abc', name='before', keep='1', change='a',
                                drop='x')
        updated = self.service().update(None, 'glance://' + image['id'], {
            'name': 'after', 'properties': {'change': 'b', 'new': 'n',
                                            'drop': None}})
        self.assertEqual('after', updated['name'])
        stored = self.glance.get_image(image['id'])
        self.assertEqual('after', stored['name'])
        self.assertEqual(('1', 'b', 'n', self.mark),
                         (stored['keep'], stored['change'], stored['new'],
                          stored['ironic_images_test']))
        self.assertNotIn('drop', stored)
        self.assertEqual(stored['change'], updated['properties']['change'])

    def test_update_with_purge_props(self):
        image = self.make_image(b'abc', keep='1', other='2')
        self.service().update(
            None, image['id'],
            {'properties': {'keep': '1', 'new': 'n',
                            'ironic_images_test': self.mark}},
            purge_props=True)
        stored = self.glance.get_image(image['id'])
        self.assertEqual(('1', 'n'), (stored['keep'], stored['new']))
        self.assertNotIn('other', stored)
        # Base attributes are not user properties: never purged.
        self.assertEqual(('test-image', 'raw', 'active'),
                         (stored['name'], stored['disk_format'],
                          stored['status']))

    def test_update_missing(self):
        self.assertRaises(exception.ImageNotFound, self.service().update,
                          None, MISSING_ID, {'name': 'x'})

    def test_delete(self):
        image = self.make_image(b'abc')
        self.assertTrue(self.service().delete(None, image['id']))
        self.assertIsNone(self.glance.get_image(image['id']))
        self.assertFalse(os.path.exists(self.glance.image_path(image['id'])))
        self.assertRaises(exception.ImageNotFound, self.service().show,
                          image['id'])
        self.assertRaises(exception.ImageNotFound, self.service().delete,
                          None, image['id'])

    def test_delete_protected_is_not_authorized(self):
        image = self.make_image(b'abc', protected=True)
        self.assertRaises(exception.ImageNotAuthorized,
                          self.service().delete, None, image['id'])
        self.assertEqual('active',
                         self.glance.get_image(image['id'])['status'])

    # --- list ---

    def test_detail_filters_and_paging(self):
        ids = [self.make_image(b'x%d' % i, name='img-%d' % i,
                               parity=str(i % 2))['id'] for i in range(5)]
        queued = self.make_image(name='queued')['id']
        service = self.service()
        images = service.detail(ironic_images_test=self.mark, page_size=2)
        self.assertEqual(sorted(ids + [queued]),
                         sorted(i['id'] for i in images))
        # Six images, two a page: Glance's next links were followed (the
        # third page is full, so Glance links a fourth, empty one).
        pages = [e for e in self.glance.requests_log(count=4)
                 if e['path'] == '/v2/images']
        self.assertEqual(4, len(pages))
        self.assertIn('limit=2', pages[0]['query'])
        self.assertIn('marker=', pages[1]['query'])

        images = service.detail(filters={'ironic_images_test': self.mark,
                                         'parity': '0'})
        self.assertEqual(sorted([ids[0], ids[2], ids[4]]),
                         sorted(i['id'] for i in images))
        images = service.detail(ironic_images_test=self.mark,
                                status='queued')
        self.assertEqual([queued], [i['id'] for i in images])
        images = service.detail(ironic_images_test=self.mark, name='img-3')
        self.assertEqual([ids[3]], [i['id'] for i in images])
        self.assertEqual('1', images[0]['properties']['parity'])

        images = service.detail(ironic_images_test=self.mark, limit=3,
                                page_size=2, sort_key='name',
                                sort_dir='asc')
        self.assertEqual(['img-0', 'img-1', 'img-2'],
                         [i['name'] for i in images])
        self.assertEqual([], service.detail(ironic_images_test='nothing'))

    # --- download ---

    def test_download_to_file_object(self):
        image = self.make_image(DATA)
        service = self.service()
        path = os.path.join(self.dest_dir, 'out')
        with open(path, 'wb') as f:
            service.download(image['id'], f)
        self.assertEqual(DATA, self.read(path))
        self.assertEqual('sha512:' + hashlib.sha512(DATA).hexdigest(),
                         service.transfer_verified_checksum)
        self.assertIn(('GET', '/v2/images/%s/file' % image['id']),
                      self.api_calls(count=2))

    def test_download_with_an_extra_checksum(self):
        image = self.make_image(DATA)
        out = io.BytesIO()
        self.service().download(image['id'], out,
                                checksum=hashlib.sha256(DATA).hexdigest(),
                                checksum_algo='sha256')
        self.assertEqual(DATA, out.getvalue())
        self.assertRaises(exception.ImageChecksumError,
                          self.service().download, image['id'], io.BytesIO(),
                          checksum='sha256:' + '0' * 64)

    def test_download_corrupted_image(self):
        image = self.make_image(DATA)
        corrupt(self.glance.image_path(image['id']))
        out = io.BytesIO()
        error = self.assertRaises(exception.ImageChecksumError,
                                  self.service().download, image['id'], out)
        self.assertIn(image['id'], str(error))

    def test_download_not_active_missing_and_empty(self):
        queued = self.make_image()
        self.assertRaises(exception.ImageUnacceptable,
                          self.service().download, queued['id'],
                          io.BytesIO())
        self.assertRaises(exception.ImageNotFound, self.service().download,
                          MISSING_ID, io.BytesIO())
        empty = self.make_image(b'')
        self.assertEqual(('active', 0), (empty['status'], empty['size']))
        self.assertRaises(exception.ImageDownloadFailed,
                          self.service().download, empty['id'],
                          io.BytesIO())

    def test_user_token_for_download(self):
        image = self.make_image(b'abc')
        context = oslo_context.RequestContext(auth_token='user-token-2')
        out = io.BytesIO()
        self.service(context=context).download(image['id'], out)
        self.assertEqual(b'abc', out.getvalue())
        tokens = {e['token'] for e in self.glance.requests_log(count=2)
                  if image['id'] in e['path']}
        self.assertEqual({'user-token-2'}, tokens)

    # --- direct_url ---

    def _direct_config(self, allow_store):
        self.config(allowed_direct_url_schemes=['file'], group='glance')
        paths = [self.images_dir]
        if allow_store:
            paths.append(self.glance.data_dir)
        self.config(allowed_paths=paths, group='file')

    def test_direct_url_copied_when_allowed(self):
        self._direct_config(allow_store=True)
        image = self.make_image(DATA)
        self.assertEqual('file://' + self.glance.image_path(image['id']),
                         image['direct_url'])
        path = os.path.join(self.dest_dir, 'out')
        with open(path, 'wb') as f:
            self.service().download(image['id'], f)
        self.assertEqual(DATA, self.read(path))
        self.assertEqual(1, os.stat(path).st_nlink)  # a copy, not a link
        calls = self.api_calls(count=1)
        self.assertIn(('GET', '/v2/images/%s' % image['id']), calls)
        self.assertNotIn(('GET', '/v2/images/%s/file' % image['id']), calls)

    def test_direct_url_copy_is_verified(self):
        self._direct_config(allow_store=True)
        image = self.make_image(DATA)
        corrupt(self.glance.image_path(image['id']))
        self.assertRaises(exception.ImageChecksumError,
                          self.service().download, image['id'],
                          io.BytesIO())

    def test_direct_url_refused_path_uses_the_api(self):
        self._direct_config(allow_store=False)
        image = self.make_image(DATA)
        out = io.BytesIO()
        self.service().download(image['id'], out)
        self.assertEqual(DATA, out.getvalue())
        self.assertIn(('GET', '/v2/images/%s/file' % image['id']),
                      self.api_calls(count=2))

    def test_direct_url_ignored_by_default(self):
        image = self.make_image(DATA)
        self.config(allowed_paths=[self.images_dir, self.glance.data_dir],
                    group='file')
        out = io.BytesIO()
        self.service().download(image['id'], out)
        self.assertEqual(DATA, out.getvalue())
        self.assertIn(('GET', '/v2/images/%s/file' % image['id']),
                      self.api_calls(count=2))


class TestGlanceCache(GlanceTestCase):
    """Glance images through the master-image cache."""

    def setUp(self):
        super().setUp()
        # A leftover clean-up runs once per process and directory.
        self.useFixture(fixtures.MockPatchObject(cache, '_PREPARED', set()))
        self.cache = image_cache.ImageCache(
            os.path.join(self.dest_dir, 'master'), 10 ** 10, 3600)
        self.context = oslo_context.RequestContext(auth_token='cache-user')

    def fetch(self, image_id, name):
        return self.cache.fetch_image(
            image_id, os.path.join(self.dest_dir, name), ctx=self.context,
            force_raw=False)

    def test_hit_asks_glance_as_the_caller(self):
        image = self.make_image(DATA, disk_format='raw')
        self.assertFalse(self.fetch(image['id'], 'one').hit)
        self.glance.reset_log()
        second = self.fetch(image['id'], 'two')
        self.assertTrue(second.hit)
        self.assertEqual(DATA, self.read(second.path))
        # One GET of the image record, with the caller's token; no data.
        self.assertEqual(
            [('GET', '/v2/images/%s' % image['id'], 'cache-user')],
            [(e['method'], e['path'], e['token'])
             for e in self.glance.requests_log(count=1)])

    def test_deleted_image_is_not_handed_out(self):
        image = self.make_image(DATA, disk_format='raw')
        first = self.fetch(image['id'], 'one')
        self.glance.request('DELETE', '/v2/images/%s' % image['id'],
                            expected=204)
        self.assertRaises(exception.ImageNotFound, self.fetch, image['id'],
                          'two')
        self.assertFalse(os.path.exists(os.path.join(self.dest_dir, 'two')))
        # The master itself is left to eviction.
        self.assertTrue(os.path.exists(first.master))

    def test_deactivated_image_is_not_handed_out(self):
        image = self.make_image(DATA, disk_format='raw')
        self.fetch(image['id'], 'one')
        self.glance.request('POST', '/v2/images/%s/actions/deactivate'
                            % image['id'], expected=204)
        self.assertRaises(exception.ImageUnacceptable, self.fetch,
                          image['id'], 'two')
        self.assertFalse(os.path.exists(os.path.join(self.dest_dir, 'two')))


class TestGlanceUnreachable(base.TestCase):
    """Connection failures, without a Glance (nothing listens)."""

    def test_connection_refused_is_a_temporary_failure(self):
        port = servers_base.free_port()
        self.config(auth_type='none', num_retries=1, group='glance',
                    endpoint_override='http://127.0.0.1:%d' % port)
        sleeps = self.useFixture(fixtures.MockPatch(
            'ironic_images.image_service.glance.client._sleep')).mock
        service = image_service.get_image_service(MISSING_ID)
        error = self.assertRaises(exception.TemporaryFailure, service.show,
                                  MISSING_ID)
        self.assertIn('2 attempts', str(error))
        self.assertEqual(1, sleeps.call_count)
