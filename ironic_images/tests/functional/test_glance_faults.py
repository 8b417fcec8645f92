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
"""The Glance driver against the faults a real Glance cannot be made to do.

A :class:`.servers.faults.FaultServer` plays Glance: it answers
``GET /v2/images/ID`` with the JSON Glance 33 gives (see
:func:`glance_image`) and serves the data like Glance does (Range honoured,
no ETag or Last-Modified, ``If-Range`` ignored), then drops connections or
answers 503 as scripted.
"""

import hashlib
import io
import json
import os
import uuid

import fixtures

from ironic_images import api
from ironic_images import exception
from ironic_images import image_service
from ironic_images.tests import base
from ironic_images.tests.functional.servers import faults

DATA = os.urandom(3 * 1024 * 1024 + 7)
MIB = 1024 * 1024


def glance_image(data, **extra):
    """An active image as Glance 33 shows it (captured from one)."""
    image_id = str(uuid.uuid4())
    image = {
        'name': 'faulty', 'disk_format': 'raw', 'container_format': 'bare',
        'visibility': 'shared', 'size': len(data),
        'virtual_size': len(data), 'status': 'active',
        'checksum': hashlib.md5(data).hexdigest(), 'protected': False,
        'min_ram': 0, 'min_disk': 0, 'owner': None, 'os_hidden': False,
        'os_hash_algo': 'sha512',
        'os_hash_value': hashlib.sha512(data).hexdigest(), 'id': image_id,
        'created_at': '2026-11-22T00:38:48Z',
        'updated_at': '2026-11-22T00:38:49Z', 'tags': [],
        'self': '/v2/images/%s' % image_id,
        'file': '/v2/images/%s/file' % image_id,
        'schema': '/v2/schemas/image', 'stores': 'fs'}
    image.update(extra)
    return image


class TestGlanceFaults(base.TestCase):

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(faults.FaultServerFixture())
        self.config(auth_type='none', endpoint_override=self.server.url,
                    num_retries=2, group='glance')
        self.config(chunk_size=64 * 1024, group='download')
        self.sleeps = self.useFixture(fixtures.MockPatch(
            'ironic_images.image_service.glance.client._sleep')).mock

    def publish(self, data=DATA, stored=None, **extra):
        """Serve an image's JSON and its data (``stored``, if given)."""
        image = glance_image(data, **extra)
        self.server.add('/v2/images/%s' % image['id'],
                        body=json.dumps(image).encode(), etag=None,
                        last_modified=None, content_type='application/json')
        # Glance ignores If-Range: a resource whose ETag is the validator
        # the driver sends behaves the same.
        self.server.add(image['file'], body=data if stored is None
                        else stored,
                        etag='"%s"' % image['os_hash_value'],
                        last_modified=None)
        return image

    def download(self, image_id):
        out = io.BytesIO()
        image_service.get_image_service(image_id).download(image_id, out)
        return out.getvalue()

    def test_dropped_download_resumes_with_range(self):
        image = self.publish()
        self.server.script(image['file'], [faults.cut(MIB), None])
        self.assertEqual(DATA, self.download(image['id']))
        gets = self.server.requests_for(image['file'], 'GET')
        self.assertEqual(2, len(gets))
        self.assertIsNone(gets[0].header('range'))
        self.assertTrue(gets[1].header('range').startswith('bytes='))
        self.assertNotEqual('bytes=0-', gets[1].header('range'))

    def test_dropped_iterator_download_resumes(self):
        # An iterator cannot take back what it yielded: it resumes.
        image = self.publish()
        self.server.script(image['file'], [faults.cut(MIB), None])
        chunks = api.API().download(None, 'glance://' + image['id'])
        self.assertEqual(DATA, b''.join(chunks))
        self.assertEqual(2, len(self.server.requests_for(image['file'],
                                                         'GET')))

    def test_dropped_download_of_wrong_bytes_is_not_accepted(self):
        stored = bytearray(DATA)
        stored[-5] ^= 0xff
        image = self.publish(stored=bytes(stored))
        self.server.script(image['file'], [faults.cut(MIB), None])
        self.assertRaises(exception.ImageChecksumError, self.download,
                          image['id'])

    def test_503_is_retried(self):
        image = self.publish()
        path = '/v2/images/%s' % image['id']
        self.server.script(path, [faults.error(503), faults.error(503)])
        info = image_service.get_image_service(image['id']).show(image['id'])
        self.assertEqual(len(DATA), info['size'])
        self.assertEqual(3, len(self.server.requests_for(path)))
        self.assertEqual(2, self.sleeps.call_count)

    def test_503_persisting_is_a_temporary_failure(self):
        image = self.publish()
        path = '/v2/images/%s' % image['id']
        self.server.script(path, [faults.error(503)] * 3)
        error = self.assertRaises(
            exception.TemporaryFailure,
            image_service.get_image_service(image['id']).show, image['id'])
        self.assertIn('503', str(error))
        self.assertEqual(3, len(self.server.requests_for(path)))

    def test_429_with_retry_after(self):
        image = self.publish()
        path = '/v2/images/%s' % image['id']
        self.server.script(path, [faults.error(429, retry_after=7)])
        image_service.get_image_service(image['id']).show(image['id'])
        self.sleeps.assert_called_once_with(7)

    def test_errors_are_mapped(self):
        image = self.publish()
        path = '/v2/images/%s' % image['id']
        service = image_service.get_image_service(image['id'])
        for status, error in ((401, exception.ImageNotAuthorized),
                              (403, exception.ImageNotAuthorized),
                              (404, exception.ImageNotFound),
                              (400, exception.ImageRefValidationFailed),
                              (500, exception.IronicImagesException)):
            self.server.script(path, [faults.error(status)])
            raised = self.assertRaises(error, service.show, image['id'])
            self.assertIn(str(status), str(raised))
        self.assertEqual(0, self.sleeps.call_count)

    def test_size_mismatch(self):
        # Glance says one size and sends fewer bytes.
        image = self.publish(stored=DATA[:-100])
        error = self.assertRaises(exception.ImageDownloadFailed,
                                  self.download, image['id'])
        self.assertIn(str(len(DATA)), str(error))
