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

import gc
import hashlib
import io
import os
import threading

import fixtures
from oslo_context import context as oslo_context

from ironic_images import api
from ironic_images import exception
from ironic_images.hosts import nova
from ironic_images.tests.unit.image_service.glance import glance_base

ENDPOINT = glance_base.ENDPOINT
ID = '0f0e0d0c-0b0a-4909-8807-060504030201'
IMAGE_URL = ENDPOINT + '/v2/images/' + ID
FILE_URL = IMAGE_URL + '/file'
CHUNK = 64 * 1024
DATA = os.urandom(3 * CHUNK + 100)
SHA512 = hashlib.sha512(DATA).hexdigest()
SHA256 = hashlib.sha256(DATA).hexdigest()
HTTP_URL = 'http://images.test/disk.img'
TOKEN = 'user-token-0123456789'


def glance_image(**changes):
    image = {'id': ID, 'status': 'active', 'size': len(DATA),
             'os_hash_algo': 'sha512', 'os_hash_value': SHA512,
             'checksum': hashlib.md5(DATA).hexdigest(), 'name': 'disk',
             'disk_format': 'raw', 'container_format': 'bare',
             'updated_at': '2024-05-02T11:12:13Z'}
    image.update(changes)
    return image


class ApiTestCase(glance_base.GlanceMockTestCase):

    def setUp(self):
        super().setUp()
        # http:// hrefs retry through http_client's tenacity loop.
        self.useFixture(fixtures.MockPatch('tenacity.nap.time.sleep'))
        self.config(chunk_size=CHUNK, group='download')
        self.api = api.API()
        self.path = os.path.join(self.images_dir, 'disk.img')
        with open(self.path, 'wb') as image:
            image.write(DATA)
        self.file_href = 'file://' + self.path

    def serve_glance(self, data=DATA, **changes):
        self.mocker.get(IMAGE_URL, json=glance_image(**changes))
        self.mocker.get(FILE_URL, content=data,
                        headers={'Content-Length': str(len(data))})

    def serve_http(self):
        self.mocker.head(HTTP_URL, headers={'Content-Length': str(len(DATA))})
        self.mocker.get(HTTP_URL, content=DATA,
                        headers={'Content-Length': str(len(DATA))})


class TestGet(ApiTestCase):

    def test_glance_any_status(self):
        self.serve_glance(status='queued', direct_url='file:///x')
        context = oslo_context.RequestContext(auth_token=TOKEN)
        info = self.api.get(context, ID)
        self.assertEqual('queued', info['status'])
        self.assertNotIn('direct_url', info)
        self.assertEqual(TOKEN,
                         self.mocker.last_request.headers['X-Auth-Token'])
        info = self.api.get(None, 'glance://' + ID, include_locations=True)
        self.assertEqual('file:///x', info['direct_url'])

    def test_other_schemes(self):
        self.assertEqual(len(DATA), self.api.get(None, self.file_href)['size'])
        self.serve_http()
        self.assertEqual(len(DATA), self.api.get(None, HTTP_URL)['size'])

    def test_missing(self):
        self.mocker.get(IMAGE_URL, status_code=404)
        self.assertRaises(exception.ImageNotFound, self.api.get, None, ID)

    def test_not_an_href(self):
        self.assertRaises(exception.UnknownImageService, self.api.get, None,
                          'disk.img')

    def test_disabled_scheme(self):
        self.config(enabled_image_services=['file'])
        self.assertRaises(exception.UnknownImageService, self.api.get, None,
                          ID)


class TestChanges(ApiTestCase):

    def test_get_all(self):
        self.mocker.get(ENDPOINT + '/v2/images',
                        json={'images': [glance_image()]})
        images = self.api.get_all(None, status='active', page_size=10)
        self.assertEqual([ID], [i['id'] for i in images])
        self.assertEqual({'status': ['active'], 'limit': ['10']},
                         self.mocker.last_request.qs)

    def test_create_update_delete(self):
        self.mocker.post(ENDPOINT + '/v2/images', status_code=201,
                         json=glance_image(status='queued'))
        self.mocker.put(FILE_URL, status_code=204)
        self.mocker.get(IMAGE_URL, json=glance_image())
        created = self.api.create(None, {'name': 'disk'}, data=DATA)
        self.assertEqual('active', created['status'])
        self.mocker.patch(IMAGE_URL, json=glance_image(name='new'))
        updated = self.api.update(None, ID, {'name': 'new'},
                                  purge_props=True)
        self.assertEqual('new', updated['name'])
        self.mocker.delete(IMAGE_URL, status_code=204)
        self.assertTrue(self.api.delete(None, 'glance://' + ID))

    def test_read_only_schemes(self):
        for href in (self.file_href, HTTP_URL, 'https://images.test/x',
                     'oci://registry.test/disk@sha256:' + '0' * 64):
            for call in (lambda: self.api.update(None, href, {'name': 'x'}),
                         lambda: self.api.delete(None, href)):
                error = self.assertRaises(exception.OperationNotSupported,
                                          call)
                self.assertIn('read-only', str(error))
                self.assertIn(href.partition(':')[0], str(error))
        self.assertEqual(0, self.mocker.call_count)


class TestDownload(ApiTestCase):

    def test_to_file_object(self):
        self.serve_glance()
        out = io.BytesIO()
        self.assertIsNone(self.api.download(None, ID, data=out))
        self.assertEqual(DATA, out.getvalue())

    def test_to_path(self):
        self.serve_glance()
        dest = os.path.join(self.images_dir, 'dest')
        self.assertIsNone(self.api.download(None, ID, dest_path=dest))
        with open(dest, 'rb') as written:
            self.assertEqual(DATA, written.read())

    def test_to_path_is_atomic(self):
        self.serve_glance(data=DATA[:-1] + b'!')
        dest = os.path.join(self.images_dir, 'dest')
        with open(dest, 'wb') as old:
            old.write(b'old')
        self.assertRaises(exception.ImageChecksumError, self.api.download,
                          None, ID, dest_path=dest)
        with open(dest, 'rb') as old:
            self.assertEqual(b'old', old.read())
        self.assertEqual(['dest', 'disk.img'],
                         sorted(os.listdir(self.images_dir)))

    def test_to_path_in_missing_directory(self):
        self.serve_glance()
        error = self.assertRaises(
            exception.ImageDownloadFailed, self.api.download, None, ID,
            dest_path=os.path.join(self.images_dir, 'no', 'dest'))
        self.assertIn('its directory does not exist', str(error))

    def test_not_both(self):
        self.assertRaises(exception.OperationNotSupported,
                          self.api.download, None, ID, data=io.BytesIO(),
                          dest_path=self.path + '.x')
        self.assertEqual(0, self.mocker.call_count)

    def test_iterator(self):
        self.serve_glance()
        chunks = list(self.api.download(None, ID))
        self.assertEqual(DATA, b''.join(chunks))
        self.assertGreater(len(chunks), 1)
        self.assertTrue(all(isinstance(c, bytes) for c in chunks))

    def test_iterator_raises_a_mismatch_after_the_last_chunk(self):
        bad = DATA[:-1] + b'!'
        self.serve_glance(data=bad)
        iterator = self.api.download(None, ID)
        received = []
        error = self.assertRaises(exception.ImageChecksumError,
                                  lambda: received.extend(iterator))
        self.assertEqual(bad, b''.join(received))
        self.assertIn(SHA512, str(error))
        self.assertEqual([], list(iterator))

    def test_iterator_error_before_data_is_raised_at_once(self):
        self.mocker.get(IMAGE_URL, status_code=404)
        self.assertRaises(exception.ImageNotFound, self.api.download, None,
                          ID)
        self.serve_glance(status='saving')
        self.assertRaises(exception.ImageUnacceptable, self.api.download,
                          None, ID)

    def test_iterator_closed_early_stops_the_download(self):
        self.serve_glance()
        iterator = self.api.download(None, ID)
        self.assertEqual(CHUNK, len(next(iterator)))
        iterator.close()
        self.assertEqual([], list(iterator))
        iterator._thread.join(timeout=60)
        self.assertFalse(iterator._thread.is_alive())

    def serve_large_glance(self):
        # More chunks than the iterator keeps ahead of its consumer, so the
        # producer is still blocked on the queue when the consumer goes.
        data = os.urandom(4 * nova._ITERATOR_DEPTH * CHUNK)
        self.serve_glance(data=data, size=len(data),
                          os_hash_value=hashlib.sha512(data).hexdigest())

    def test_iterator_dropped_stops_the_download(self):
        self.serve_large_glance()
        iterator = self.api.download(None, ID)
        self.assertEqual(CHUNK, len(next(iterator)))
        thread = iterator._thread
        del iterator
        gc.collect()
        thread.join(timeout=60)
        self.assertFalse(thread.is_alive())

    def test_iterator_close_waits_for_the_download_to_stop(self):
        self.serve_large_glance()
        iterator = self.api.download(None, ID)
        next(iterator)
        iterator.close()
        self.assertFalse(iterator._thread.is_alive())
        self.assertEqual([], list(iterator))

    def test_queue_writer_refuses_once_stopped(self):
        stopped = threading.Event()
        stopped.set()
        writer = nova._QueueWriter(None, stopped)
        self.assertRaises(nova._Consumed, writer.write, b'x')
        self.assertFalse(writer.seekable())
        self.assertRaises(io.UnsupportedOperation, writer.fileno)

    def test_every_scheme(self):
        self.serve_http()
        for href in (self.file_href, HTTP_URL):
            self.assertEqual(DATA, b''.join(self.api.download(
                None, href, checksum='sha256:' + SHA256)))
            out = io.BytesIO()
            self.api.download(None, href, data=out)
            self.assertEqual(DATA, out.getvalue())
            dest = os.path.join(self.images_dir, 'copy')
            self.api.download(None, href, dest_path=dest)
            with open(dest, 'rb') as written:
                self.assertEqual(DATA, written.read())

    def test_checksum_of_other_schemes(self):
        self.serve_http()
        for href in (self.file_href, HTTP_URL):
            received = []
            self.assertRaises(
                exception.ImageChecksumError,
                lambda: received.extend(self.api.download(
                    None, href, checksum='sha256:' + '0' * 64)))
            self.assertRaises(exception.ImageChecksumError,
                              self.api.download, None, href,
                              data=io.BytesIO(),
                              checksum='sha256:' + '0' * 64)
