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

import datetime
import hashlib
import io
import json
import os
import re

import fixtures
from oslo_context import context as oslo_context
from oslo_utils import uuidutils
import requests

from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service.glance import client as glance_client
from ironic_images.image_service.glance import driver as glance
from ironic_images.image_service.glance import metadata as glance_metadata
from ironic_images.tests import base
from ironic_images.tests.unit.image_service.glance import glance_base

ENDPOINT = glance_base.ENDPOINT
ID = '6b1c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3'
IMAGE_URL = ENDPOINT + '/v2/images/' + ID
FILE_URL = IMAGE_URL + '/file'
DATA = bytes(range(256)) * 512
SHA512 = hashlib.sha512(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()
TOKEN = 'user-token-0123456789'


def image(**changes):
    result = {
        'id': ID, 'name': 'disk', 'status': 'active', 'size': len(DATA),
        'virtual_size': 4 * len(DATA), 'disk_format': 'raw',
        'container_format': 'bare', 'visibility': 'private',
        'owner': 'p1', 'protected': False, 'os_hidden': False, 'tags': [],
        'min_disk': 0, 'min_ram': 0, 'checksum': MD5,
        'os_hash_algo': 'sha512', 'os_hash_value': SHA512,
        'created_at': '2024-05-01T10:00:00Z',
        'updated_at': '2024-05-02T11:12:13Z',
        'file': '/v2/images/%s/file' % ID, 'schema': '/v2/schemas/image',
        'self': '/v2/images/%s' % ID, 'kernel_id': 'k1', 'hw_arch': 'x86'}
    result.update(changes)
    return result


class GlanceServiceTestCase(glance_base.GlanceMockTestCase):

    def setUp(self):
        super().setUp()
        self.service = glance.GlanceImageService()

    def serve(self, data=DATA, **changes):
        self.mocker.get(IMAGE_URL, json=image(**changes))
        self.mocker.get(FILE_URL, content=data,
                        headers={'Content-Length': str(len(data)),
                                 'Content-Type': 'application/octet-stream'})

    def file_requests(self):
        return [r for r in self.mocker.request_history
                if r.url.startswith(FILE_URL)]


class TestParseImageId(base.TestCase):

    def test_accepted(self):
        for href in (ID, ID.upper(), ' %s ' % ID, 'glance://' + ID,
                     'GLANCE://' + ID, 'glance://host:9292/' + ID,
                     'glance:///' + ID):
            self.assertEqual(ID, glance.parse_image_id(href), href)

    def test_refused(self):
        for href in ('glance://', 'glance://not-a-uuid',
                     'glance://host/' + ID + '/x', 'glance://a/b/' + ID,
                     'glance://%s?x=1' % ID, 'glance://%s#f' % ID,
                     'http://host/' + ID, 'disk.img'):
            self.assertRaises(exception.ImageRefValidationFailed,
                              glance.parse_image_id, href)

    def test_driver_is_loaded_for_uuids_and_glance_hrefs(self):
        for href in (ID, 'glance://' + ID):
            self.assertIsInstance(image_service.get_image_service(href),
                                  glance.GlanceImageService)


class TestShow(GlanceServiceTestCase):

    def test_active(self):
        self.serve(direct_url='file:///var/lib/glance/images/' + ID)
        info = self.service.show('glance://' + ID)
        self.assertEqual(len(DATA), info['size'])
        self.assertEqual(datetime.datetime(2024, 5, 2, 11, 12, 13),
                         info['updated_at'])
        self.assertIsNone(info['updated_at'].tzinfo)
        self.assertEqual('raw', info['disk_format'])
        self.assertEqual(SHA512, info['os_hash_value'])
        self.assertFalse(info['no_cache'])
        self.assertNotIn('direct_url', info)
        self.assertNotIn('locations', info)
        self.assertEqual({'kernel_id': 'k1', 'hw_arch': 'x86',
                          'disk_format': 'raw', 'container_format': 'bare',
                          'checksum': MD5, 'os_hash_algo': 'sha512',
                          'os_hash_value': SHA512,
                          'virtual_size': 4 * len(DATA),
                          'visibility': 'private', 'owner': 'p1'},
                         info['properties'])
        self.assertEqual(info, self.service.validate_href(ID))

    def test_offset_timestamps_become_utc(self):
        self.serve(updated_at='2024-05-02T13:12:13+02:00')
        self.assertEqual(datetime.datetime(2024, 5, 2, 11, 12, 13),
                         self.service.show(ID)['updated_at'])

    def test_not_active(self):
        for status in ('queued', 'saving', 'deactivated', 'killed'):
            self.serve(status=status)
            error = self.assertRaises(exception.ImageUnacceptable,
                                      self.service.show, ID)
            self.assertIn(status, str(error))
            self.assertIn(ID, str(error))

    def test_get_image_any_status_with_locations(self):
        self.serve(status='queued', size=None, direct_url='file:///x',
                   locations=[{'url': 'file:///x', 'metadata': {}}])
        info = self.service.get_image(ID, include_locations=True)
        self.assertEqual('queued', info['status'])
        self.assertEqual('file:///x', info['direct_url'])
        self.assertEqual(1, len(info['locations']))
        self.assertNotIn('locations', self.service.get_image(ID))

    def test_missing(self):
        self.mocker.get(IMAGE_URL, status_code=404)
        self.assertRaises(exception.ImageNotFound, self.service.show, ID)

    def test_answer_that_is_not_an_image(self):
        # A proxy's empty 200, a list, an image without its id: ours, not
        # AttributeError, TypeError or KeyError.
        for body in ('', '[]', '"image"', '{"status": "active"}'):
            self.mocker.get(IMAGE_URL, text=body)
            self.mocker.post(ENDPOINT + '/v2/images', text=body)
            self.mocker.get(ENDPOINT + '/v2/images',
                            text='{"images": [%s]}' % (body or 'null'))
            for call in (self.service.show, self.service.get_image,
                         lambda href: self.service.create(None, {}),
                         lambda href: self.service.detail()):
                error = self.assertRaises(exception.ImageRefValidationFailed,
                                          call, ID)
                self.assertIn('not an image', str(error))
            self.assertRaises(exception.ImageDownloadFailed,
                              self.service.download, ID, io.BytesIO())

    def test_invalid_href_makes_no_request(self):
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.show, 'glance://nope')
        self.assertEqual(0, self.mocker.call_count)


class TestDownload(GlanceServiceTestCase):

    def test_verified_with_multihash(self):
        self.serve()
        progress = []
        out = io.BytesIO()
        self.service.download('glance://' + ID, out,
                              progress=lambda done, total: progress.append(
                                  (done, total)))
        self.assertEqual(DATA, out.getvalue())
        self.assertEqual('sha512:' + SHA512,
                         self.service.transfer_verified_checksum)
        self.assertEqual((len(DATA), len(DATA)), progress[-1])
        self.assertEqual('identity',
                         self.file_requests()[0].headers['Accept-Encoding'])

    def test_hash_mismatch(self):
        self.serve(data=DATA[:-1] + b'!')
        out = io.BytesIO()
        error = self.assertRaises(exception.ImageChecksumError,
                                  self.service.download, ID, out)
        self.assertIn(SHA512, str(error))
        self.assertIn(ID, str(error))
        self.assertIsNone(self.service.transfer_verified_checksum)

    def test_md5_only_when_no_multihash(self):
        self.serve(os_hash_algo=None, os_hash_value=None)
        self.assertRaises(exception.ImageChecksumAlgorithmFailure,
                          self.service.download, ID, io.BytesIO())
        self.assertEqual([], self.file_requests())
        self.config(allow_md5_checksum=True)
        out = io.BytesIO()
        self.service.download(ID, out)
        self.assertEqual('md5:' + MD5,
                         self.service.transfer_verified_checksum)
        self.serve(data=DATA[:-1] + b'!', os_hash_algo=None,
                   os_hash_value=None)
        self.assertRaises(exception.ImageChecksumError,
                          self.service.download, ID, io.BytesIO())

    def test_multihash_wins_over_a_wrong_md5(self):
        self.serve(checksum='0' * 32)
        self.service.download(ID, io.BytesIO())

    def test_no_checksum_at_all_checks_the_size(self):
        logger = self.useFixture(fixtures.FakeLogger())
        self.serve(os_hash_algo=None, os_hash_value=None, checksum=None)
        out = io.BytesIO()
        self.service.download(ID, out)
        self.assertEqual(DATA, out.getvalue())
        self.assertIsNone(self.service.transfer_verified_checksum)
        self.assertIn('no checksum', logger.output)

    def test_extra_checksum(self):
        self.serve()
        sha256 = hashlib.sha256(DATA).hexdigest()
        self.service.download(ID, io.BytesIO(), checksum=sha256)
        self.assertRaises(exception.ImageChecksumError,
                          self.service.download, ID, io.BytesIO(),
                          checksum='1' * 64)

    def test_zero_byte_image(self):
        self.serve(data=b'', size=0)
        error = self.assertRaises(exception.ImageDownloadFailed,
                                  self.service.download, ID, io.BytesIO())
        self.assertIn('no data', str(error))
        self.assertEqual([], self.file_requests())

    def test_size_unknown(self):
        self.serve(size=None)
        out = io.BytesIO()
        self.service.download(ID, out)
        self.assertEqual(DATA, out.getvalue())

    def test_size_unknown_and_no_bytes(self):
        self.serve(data=b'', size=None, os_hash_algo=None,
                   os_hash_value=None, checksum=None)
        self.assertRaises(exception.ImageDownloadFailed,
                          self.service.download, ID, io.BytesIO())
        self.assertEqual(1, len(self.file_requests()))

    def test_no_content_answer(self):
        self.serve()
        self.mocker.get(FILE_URL, status_code=204)
        self.assertRaises(exception.ImageDownloadFailed,
                          self.service.download, ID, io.BytesIO())

    def test_not_active(self):
        self.serve(status='queued')
        self.assertRaises(exception.ImageUnacceptable,
                          self.service.download, ID, io.BytesIO())
        self.assertEqual([], self.file_requests())

    def test_longer_than_its_size(self):
        self.serve(data=DATA + b'more', size=len(DATA))
        self.assertRaises(exception.ImageDownloadFailed,
                          self.service.download, ID, io.BytesIO())

    def test_resumed_with_range(self):
        self.mocker.get(IMAGE_URL, json=image())
        half = len(DATA) // 2
        self.mocker.get(FILE_URL, [
            {'content': DATA[:half],
             'headers': {'Content-Length': str(len(DATA))}},
            {'status_code': 206, 'content': DATA[half:],
             'headers': {'Content-Length': str(len(DATA) - half),
                         'Content-Range': 'bytes %d-%d/%d' % (
                             half, len(DATA) - 1, len(DATA))}}])
        out = io.BytesIO()
        self.service.download(ID, out)
        self.assertEqual(DATA, out.getvalue())
        resume = self.file_requests()[1]
        self.assertEqual('bytes=%d-' % half, resume.headers['Range'])
        self.assertEqual('"%s"' % SHA512, resume.headers['If-Range'])

    def test_reconnect_failures_give_up(self):
        self.config(retries=1, group='download')
        self.mocker.get(IMAGE_URL, json=image())
        self.mocker.get(FILE_URL, [
            {'content': DATA[:10],
             'headers': {'Content-Length': str(len(DATA))}},
            {'exc': requests.exceptions.ConnectionError('reset')}])
        self.assertRaises(exception.ImageDownloadFailed,
                          self.service.download, ID, io.BytesIO())

    def test_503_on_the_data_is_retried(self):
        self.mocker.get(IMAGE_URL, json=image())
        self.mocker.get(FILE_URL, [
            {'status_code': 503},
            {'content': DATA,
             'headers': {'Content-Length': str(len(DATA))}}])
        out = io.BytesIO()
        self.service.download(ID, out)
        self.assertEqual(DATA, out.getvalue())

    def test_503_on_the_data_persists(self):
        self.config(num_retries=1, group='glance')
        self.mocker.get(IMAGE_URL, json=image())
        self.mocker.get(FILE_URL, status_code=503)
        self.assertRaises(exception.TemporaryFailure,
                          self.service.download, ID, io.BytesIO())
        self.assertEqual(2, len(self.file_requests()))

    def test_errors_on_the_data(self):
        for status, error_class in (
                (401, exception.ImageServiceAuthenticationRequired),
                (403, exception.ImageNotAuthorized),
                (404, exception.ImageNotFound),
                (500, exception.ImageDownloadFailed)):
            self.serve()
            self.mocker.get(FILE_URL, status_code=status)
            self.assertRaises(error_class, self.service.download, ID,
                              io.BytesIO())

    def test_user_token_from_context(self):
        self.serve()
        context = oslo_context.RequestContext(auth_token=TOKEN)
        service = glance.GlanceImageService(context=context)
        service.download(ID, io.BytesIO())
        for request in self.mocker.request_history:
            self.assertEqual(TOKEN, request.headers['X-Auth-Token'])


class TestDirectUrl(GlanceServiceTestCase):

    def setUp(self):
        super().setUp()
        self.store = os.path.join(self.images_dir, ID)
        with open(self.store, 'wb') as stored:
            stored.write(DATA)
        self.config(allowed_direct_url_schemes=['file'], group='glance')

    def test_copied_from_the_file(self):
        self.serve(direct_url='file://' + self.store)
        dest = os.path.join(self.images_dir, 'dest')
        with fileutils.atomic_write(dest) as out:
            self.service.download(ID, out)
        with open(dest, 'rb') as copied:
            self.assertEqual(DATA, copied.read())
        self.assertEqual([], self.file_requests())
        self.assertEqual('sha512:' + SHA512,
                         self.service.transfer_verified_checksum)
        # A copy, never a link into Glance's store.
        self.assertEqual(1, os.stat(self.store).st_nlink)
        self.assertNotEqual(os.stat(self.store).st_ino,
                            os.stat(dest).st_ino)

    def test_from_locations(self):
        self.serve(locations=[{'url': 'rbd://pool/x', 'metadata': {}},
                              {'url': 'file://' + self.store,
                               'metadata': {}}])
        out = io.BytesIO()
        self.service.download(ID, out)
        self.assertEqual(DATA, out.getvalue())
        self.assertEqual([], self.file_requests())

    def test_file_is_verified(self):
        self.serve(direct_url='file://' + self.store,
                   os_hash_value='0' * 128)
        self.assertRaises(exception.ImageChecksumError,
                          self.service.download, ID, io.BytesIO())

    def test_path_checks_of_the_file_driver(self):
        # Outside [file]allowed_paths, or always blocked: the API is used.
        outside = self.useFixture(fixtures.TempDir()).path
        os.link(self.store, os.path.join(outside, ID))
        for url in ('file://%s/%s' % (outside, ID), 'file:///etc/passwd',
                    'file://%s/../%s' % (self.images_dir, ID)):
            start = len(self.file_requests())
            self.serve(direct_url=url)
            out = io.BytesIO()
            self.service.download(ID, out)
            self.assertEqual(DATA, out.getvalue())
            self.assertEqual(start + 1, len(self.file_requests()), url)

    def test_symlink_out_of_allowed_paths(self):
        outside = self.useFixture(fixtures.TempDir()).path
        target = os.path.join(outside, 'secret')
        with open(target, 'wb') as secret:
            secret.write(DATA)
        link = os.path.join(self.images_dir, 'link')
        os.symlink(target, link)
        self.serve(direct_url='file://' + link)
        self.service.download(ID, io.BytesIO())
        self.assertEqual(1, len(self.file_requests()))

    def test_size_of_a_file_without_checksum(self):
        # With no checksum to verify, the size is all that says the file
        # is the image: a file of another size is not read.
        with open(self.store, 'ab') as stored:
            stored.write(b'appended')
        self.serve(direct_url='file://' + self.store, os_hash_algo=None,
                   os_hash_value=None, checksum=None)
        out = io.BytesIO()
        self.service.download(ID, out)
        self.assertEqual(DATA, out.getvalue())
        self.assertEqual(1, len(self.file_requests()))

    def test_scheme_not_allowed(self):
        self.config(allowed_direct_url_schemes=[], group='glance')
        self.serve(direct_url='file://' + self.store)
        self.service.download(ID, io.BytesIO())
        self.assertEqual(1, len(self.file_requests()))

    def test_two_checksums_use_the_api(self):
        self.serve(direct_url='file://' + self.store)
        self.service.download(ID, io.BytesIO(),
                              checksum=hashlib.sha256(DATA).hexdigest())
        self.assertEqual(1, len(self.file_requests()))


class TestDetail(GlanceServiceTestCase):

    def page(self, *ids, next_marker=None):
        body = {'images': [image(id=i) for i in ids]}
        if next_marker:
            body['next'] = '/v2/images?marker=%s&limit=2' % next_marker
        return body

    def test_pages(self):
        ids = ['%08d-0000-4000-8000-000000000000' % i for i in range(5)]
        self.mocker.get(ENDPOINT + '/v2/images', [
            {'json': self.page(ids[0], ids[1], next_marker=ids[1])},
            {'json': self.page(ids[2], ids[3], next_marker=ids[3])},
            {'json': self.page(ids[4])}])
        images = self.service.detail(None, status='active', page_size=2,
                                     filters={'visibility': 'public'})
        self.assertEqual(ids, [i['id'] for i in images])
        self.assertIsInstance(images[0]['updated_at'], datetime.datetime)
        first, second, _third = self.mocker.request_history
        self.assertEqual({'status': ['active'], 'limit': ['2'],
                          'visibility': ['public']}, first.qs)
        self.assertEqual({'marker': [ids[1]], 'limit': ['2']}, second.qs)

    def test_limit_stops_paging(self):
        ids = ['%08d-0000-4000-8000-000000000000' % i for i in range(4)]
        self.mocker.get(ENDPOINT + '/v2/images', [
            {'json': self.page(ids[0], ids[1], next_marker=ids[1])},
            {'json': self.page(ids[2], ids[3])}])
        images = self.service.detail(None, limit=3)
        self.assertEqual(ids[:3], [i['id'] for i in images])
        self.assertNotIn('limit', self.mocker.request_history[0].qs)

    def test_repeated_next_link_ends(self):
        self.mocker.get(ENDPOINT + '/v2/images',
                        json=self.page(ID, next_marker=ID))
        self.assertEqual(2, len(self.service.detail()))
        self.assertEqual(2, self.mocker.call_count)

    def test_absolute_next_link_keeps_the_endpoint(self):
        self.mocker.get(ENDPOINT + '/v2/images', [
            {'json': {'images': [image()],
                      'next': 'http://elsewhere.test/v2/images?marker=m'}},
            {'json': {'images': []}}])
        self.service.detail()
        self.assertEqual(ENDPOINT + '/v2/images?marker=m',
                         self.mocker.last_request.url)

    def test_not_a_list(self):
        self.mocker.get(ENDPOINT + '/v2/images', json={'foo': 1})
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.detail)


class TestCreateUpdateDelete(GlanceServiceTestCase):

    def test_create_without_data(self):
        self.mocker.post(ENDPOINT + '/v2/images', status_code=201,
                         json=image(status='queued', size=None))
        info = self.service.create(None, {
            'name': 'disk', 'disk_format': 'qcow2', 'size': 5,
            'status': 'active', 'checksum': 'x', 'min_disk': 2,
            'properties': {'hw_arch': 'x86', 'cores': 4, 'gone': None,
                           'disk_format': 'raw'}})
        self.assertEqual('queued', info['status'])
        self.assertEqual(1, self.mocker.call_count)
        body = self.mocker.last_request.json()
        self.assertTrue(uuidutils.is_uuid_like(body.pop('id')))
        self.assertEqual({'name': 'disk', 'disk_format': 'qcow2',
                          'min_disk': 2, 'hw_arch': 'x86', 'cores': '4'},
                         body)

    def test_create_retried_after_a_lost_answer_makes_one_image(self):
        # Glance made the image, but its answer was lost: the retry must
        # find that image, not make a second one.
        self.mocker.post(ENDPOINT + '/v2/images', [
            {'exc': requests.exceptions.ConnectionError('aborted')},
            {'status_code': 409, 'text': 'Image with identifier exists'}])
        self.mocker.get(
            re.compile(ENDPOINT + '/v2/images/[^/]+$'),
            json=lambda request, context: image(
                id=request.path.rsplit('/', 1)[-1], status='queued'))
        info = self.service.create(None, {'name': 'disk'})
        posts = [r.json() for r in self.mocker.request_history
                 if r.method == 'POST']
        self.assertEqual(2, len(posts))
        self.assertEqual(posts[0], posts[1])
        self.assertEqual(posts[0]['id'], info['id'])

    def test_create_with_a_taken_id_is_refused(self):
        self.mocker.post(ENDPOINT + '/v2/images', status_code=409,
                         text='Image with identifier exists')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.service.create, None,
                                  {'id': ID, 'name': 'disk'})
        self.assertIn('409', str(error))
        self.assertEqual(1, self.mocker.call_count)

    def test_create_with_data(self):
        self.mocker.post(ENDPOINT + '/v2/images', status_code=201,
                         json=image(status='queued'))
        self.mocker.put(FILE_URL, status_code=204)
        self.mocker.get(IMAGE_URL, json=image())
        info = self.service.create(None, {'name': 'disk'},
                                   data=io.BytesIO(DATA))
        self.assertEqual('active', info['status'])
        put = self.mocker.request_history[1]
        self.assertEqual('PUT', put.method)
        self.assertEqual('application/octet-stream',
                         put.headers['Content-Type'])

    def test_create_upload_fails(self):
        self.mocker.post(ENDPOINT + '/v2/images', status_code=201,
                         json=image(status='queued'))
        self.mocker.put(FILE_URL, status_code=413, text='quota exceeded')
        self.mocker.delete(IMAGE_URL, status_code=204)
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.service.create, None, {'name': 'x'},
                                  data=DATA)
        self.assertIn('quota exceeded', str(error))
        self.assertEqual(['POST', 'PUT', 'DELETE'],
                         [r.method for r in self.mocker.request_history])

    def test_create_upload_and_delete_fail(self):
        logger = self.useFixture(fixtures.FakeLogger())
        self.mocker.post(ENDPOINT + '/v2/images', status_code=201,
                         json=image(status='queued'))
        self.mocker.put(FILE_URL, status_code=503)
        self.mocker.delete(IMAGE_URL, status_code=503)
        self.assertRaises(exception.TemporaryFailure, self.service.create,
                          None, {'name': 'x'}, data=DATA)
        self.assertIn('Could not delete image %s' % ID, logger.output)

    def test_create_refused(self):
        self.mocker.post(ENDPOINT + '/v2/images', status_code=400,
                         text='Invalid disk format')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.service.create, None,
                                  {'disk_format': 'nope'})
        self.assertIn('Invalid disk format', str(error))

    def test_update_patch(self):
        self.mocker.get(IMAGE_URL, json=image())
        self.mocker.patch(IMAGE_URL, json=image(name='new'))
        info = self.service.update(None, 'glance://' + ID, {
            'name': 'new', 'min_ram': 0,
            'properties': {'kernel_id': 'k2', 'new_prop': 'v',
                           'hw_arch': None}})
        self.assertEqual('new', info['name'])
        patch = self.mocker.last_request
        self.assertEqual(glance_client.JSON_PATCH,
                         patch.headers['Content-Type'])
        self.assertEqual([
            {'op': 'remove', 'path': '/hw_arch'},
            {'op': 'replace', 'path': '/kernel_id', 'value': 'k2'},
            {'op': 'replace', 'path': '/name', 'value': 'new'},
            {'op': 'add', 'path': '/new_prop', 'value': 'v'}],
            json.loads(patch.body))

    def test_update_purge_props(self):
        self.mocker.get(IMAGE_URL, json=image())
        self.mocker.patch(IMAGE_URL, json=image())
        self.service.update(None, ID, {'properties': {'kernel_id': 'k1'}},
                            purge_props=True)
        self.assertEqual([{'op': 'remove', 'path': '/hw_arch'}],
                         self.mocker.last_request.json())

    def test_update_nothing_changes(self):
        self.mocker.get(IMAGE_URL, json=image())
        self.service.update(None, ID, {'name': 'disk',
                                       'properties': {'kernel_id': 'k1'}})
        self.assertEqual(['GET'],
                         [r.method for r in self.mocker.request_history])

    def test_update_with_data(self):
        self.mocker.get(IMAGE_URL, json=image(status='queued'))
        self.mocker.put(FILE_URL, status_code=204)
        self.service.update(None, ID, {}, data=iter([DATA]))
        self.assertEqual(['GET', 'PUT', 'GET'],
                         [r.method for r in self.mocker.request_history])

    def test_update_missing(self):
        self.mocker.get(IMAGE_URL, status_code=404)
        self.assertRaises(exception.ImageNotFound, self.service.update,
                          None, ID, {'name': 'x'})

    def test_delete(self):
        self.mocker.delete(IMAGE_URL, status_code=204)
        self.assertTrue(self.service.delete(None, 'glance://' + ID))
        self.mocker.delete(IMAGE_URL, status_code=404)
        self.assertRaises(exception.ImageNotFound, self.service.delete,
                          None, ID)
        self.mocker.delete(IMAGE_URL, status_code=403)
        self.assertRaises(exception.ImageNotAuthorized, self.service.delete,
                          None, ID)

    def test_context_of_the_call(self):
        self.mocker.delete(IMAGE_URL, status_code=204)
        context = oslo_context.RequestContext(auth_token=TOKEN)
        self.service.delete(context, ID)
        self.assertEqual(TOKEN,
                         self.mocker.last_request.headers['X-Auth-Token'])


class TestMetadata(base.TestCase):

    def test_pointer_escaping(self):
        patch = glance_metadata.build_patch(
            {}, {'properties': {'a/b': '1', 'c~d': '2'}})
        self.assertEqual(['/a~1b', '/c~0d'], [op['path'] for op in patch])

    def test_top_level_wins(self):
        body = glance_metadata.image_body(
            {'disk_format': 'qcow2', 'properties': {'disk_format': 'raw'}})
        self.assertEqual({'disk_format': 'qcow2'}, body)

    def test_base_attribute_set_to_none_is_replaced(self):
        patch = glance_metadata.build_patch(image(), {'name': None})
        self.assertEqual([{'op': 'replace', 'path': '/name',
                           'value': None}], patch)

    def test_id_is_never_patched(self):
        self.assertEqual([], glance_metadata.build_patch(
            image(), {'id': 'other', 'status': 'killed', 'size': 1}))

    def test_tags_replaced(self):
        patch = glance_metadata.build_patch(image(tags=['a']),
                                            {'tags': ['a', 'b']})
        self.assertEqual([{'op': 'replace', 'path': '/tags',
                           'value': ['a', 'b']}], patch)
