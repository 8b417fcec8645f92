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
from unittest import mock

import fixtures
import requests
import requests_mock.contrib.fixture

from ironic_images import exception
from ironic_images.image_service import http
from ironic_images.tests import base
from ironic_images.transfer import bodies

URL = 'http://example.com/images/disk.img'
SECRET_URL = 'http://example.com/private-tenant/disk.img'
DATA = b'0123456789' * 1000
SHA256 = hashlib.sha256(DATA).hexdigest()
LAST_MODIFIED = 'Sun, 06 Nov 1994 08:49:37 GMT'


class HttpServiceTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.mocker = self.useFixture(
            requests_mock.contrib.fixture.Fixture())
        self.useFixture(fixtures.MockPatch('tenacity.nap.time.sleep'))
        self.useFixture(
            fixtures.MockPatch('ironic_images.transfer.resumable.time.sleep'))
        self.config(webserver_connection_timeout=7)
        self.service = http.HttpImageService()

    def history(self, start=0):
        return [(r.method, r.url, r.headers.get('Range'))
                for r in self.mocker.request_history[start:]]


class TestValidateHref(HttpServiceTestCase):

    def test_head(self):
        # With verify=True requests takes a CA bundle from the environment.
        for name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
            self.useFixture(fixtures.EnvironmentVariable(name))
        self.mocker.head(URL, headers={'Content-Length': '10'})
        response = self.service.validate_href(URL)
        self.assertEqual(200, response.status_code)
        request = self.mocker.last_request
        self.assertEqual('identity', request.headers['Accept-Encoding'])
        self.assertNotIn('Authorization', request.headers)
        self.assertIs(True, request.verify)
        self.assertEqual((7, 7), request.timeout)

    def test_head_refused_falls_back_to_first_byte(self):
        for status in (405, 501):
            start = self.mocker.call_count
            self.mocker.head(URL, status_code=status)
            self.mocker.get(URL, status_code=206, content=b'0', headers={
                'Content-Range': 'bytes 0-0/12345',
                'Content-Length': '1'})
            self.service.validate_href(URL)
            self.assertEqual([('HEAD', URL, None), ('GET', URL, 'bytes=0-0')],
                             self.history(start))
            self.assertEqual(12345, self.service.show(URL)['size'])

    def test_head_refused_get_fails(self):
        self.mocker.head(URL, status_code=405)
        self.mocker.get(URL, status_code=404)
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.service.validate_href, URL)
        self.assertIn('HTTP 404', str(error))

    def test_error_statuses(self):
        for status in (400, 403, 404, 410):
            self.mocker.head(URL, status_code=status)
            error = self.assertRaises(exception.ImageRefValidationFailed,
                                      self.service.validate_href, URL)
            self.assertIn('HTTP %d' % status, str(error))
            self.assertIn(URL, str(error))

    def test_401(self):
        self.mocker.head(URL, status_code=401)
        self.assertRaises(exception.ImageServiceAuthenticationRequired,
                          self.service.validate_href, URL)

    def test_not_http(self):
        for href in ('ftp://example.com/disk.img', 'http:///disk.img',
                     'file:///tmp/disk.img', 'disk.img'):
            self.assertRaises(exception.ImageRefValidationFailed,
                              self.service.validate_href, href)
            self.assertRaises(exception.ImageRefValidationFailed,
                              self.service.download, href, io.BytesIO())
        self.assertEqual(0, self.mocker.call_count)

    def test_redirects_followed(self):
        target = 'http://cdn.example.org/disk.img'
        self.mocker.head(URL, status_code=302, headers={'Location': target})
        self.mocker.head(target, headers={'Content-Length': '3'})
        info = self.service.show(URL)
        self.assertEqual(target, info['properties']['url'])
        self.assertEqual(3, info['size'])

    def test_redirect_refused_carries_the_target(self):
        self.config(allow_redirects=False, group='http')
        for status in (301, 302, 303, 307, 308):
            self.mocker.head(URL, status_code=status, headers={
                'Location': '/other/disk.img?temp_url_sig=s3cr3t&x=1'})
            error = self.assertRaises(exception.ImageRefIsARedirect,
                                      self.service.validate_href, URL)
            # Exact, so that the caller can record it...
            self.assertEqual(
                'http://example.com/other/disk.img?temp_url_sig=s3cr3t&x=1',
                error.redirect_url)
            # ...but the message is masked.
            self.assertNotIn('s3cr3t', str(error))
            self.assertIsInstance(error, exception.ImageRefValidationFailed)
        # The target is never asked for.
        self.assertEqual({URL}, {r.url for r in self.mocker.request_history})

    def test_redirect_refused_on_download(self):
        self.config(allow_redirects=False, group='http')
        self.mocker.get(URL, status_code=302,
                        headers={'Location': 'http://other/disk.img'})
        error = self.assertRaises(exception.ImageRefIsARedirect,
                                  self.service.download, URL, io.BytesIO())
        self.assertEqual('http://other/disk.img', error.redirect_url)

    def test_too_many_redirects(self):
        self.config(max_redirects=2, group='http')
        service = http.HttpImageService()
        for n in range(4):
            self.mocker.head('http://example.com/%d' % n, status_code=302,
                             headers={'Location': '/%d' % (n + 1)})
        self.mocker.head('http://example.com/4')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  service.validate_href,
                                  'http://example.com/0')
        self.assertIn('more than 2 redirects', str(error))
        self.assertEqual(3, self.mocker.call_count)

    def test_secret_hides_the_href(self):
        self.mocker.head(SECRET_URL, status_code=404)
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.service.validate_href, SECRET_URL,
                                  secret=True)
        self.assertIn('<secret URL>', str(error))
        self.assertNotIn('private-tenant', str(error))

    def test_secret_hides_the_href_of_a_connection_error(self):
        # requests names the URL path in its message.
        self.config(retries=0, group='download')
        self.mocker.head(SECRET_URL, exc=requests.ConnectionError(
            "HTTPConnectionPool(host='example.com', port=80): Max retries "
            "exceeded with url: /private-tenant/disk.img"))
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.service.validate_href, SECRET_URL,
                                  secret=True)
        self.assertNotIn('private-tenant', str(error))

    def test_secret_hides_the_href_of_incomplete_credentials(self):
        self.config(auth_strategy='http_basic', user='user', group='http')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.service.validate_href, SECRET_URL,
                                  secret=True)
        self.assertNotIn('private-tenant', str(error))

    def test_ca_path_passed_on_every_request(self):
        ca = self.create_tempfiles([('ca', b'')], ext='.pem')[0]
        self.config(webserver_verify_ca=ca)
        self.useFixture(fixtures.EnvironmentVariable('REQUESTS_CA_BUNDLE',
                                                     '/etc/other.pem'))
        self.mocker.head(URL, status_code=405)
        self.mocker.get(URL, content=DATA)
        self.service.validate_href(URL)
        self.service.download(URL, io.BytesIO())
        self.assertEqual([ca] * 3,
                         [r.verify for r in self.mocker.request_history])

    def test_missing_ca_path(self):
        self.config(webserver_verify_ca='/no/such/ca.pem')
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.validate_href, URL)
        self.assertEqual(0, self.mocker.call_count)


class TestShow(HttpServiceTestCase):

    def show(self, **headers):
        self.mocker.head(URL, headers=headers)
        return self.service.show(URL)

    def test_fields(self):
        info = self.show(**{'Content-Length': '4096', 'ETag': '"abc"',
                            'Content-Type': 'application/x-qemu-disk',
                            'Last-Modified': LAST_MODIFIED})
        self.assertEqual(4096, info['size'])
        self.assertEqual(datetime.datetime(1994, 11, 6, 8, 49, 37),
                         info['updated_at'])
        self.assertIsNone(info['updated_at'].tzinfo)
        self.assertEqual({'etag': '"abc"',
                          'content_type': 'application/x-qemu-disk',
                          'last_modified': LAST_MODIFIED,
                          'url': URL}, info['properties'])
        self.assertFalse(info['no_cache'])

    def test_every_date_format_is_naive_utc(self):
        expected = datetime.datetime(1994, 11, 6, 8, 49, 37)
        for value in (LAST_MODIFIED, 'Sunday, 06-Nov-94 08:49:37 GMT',
                      'Sun Nov  6 08:49:37 1994',
                      'Sun, 06 Nov 1994 10:49:37 +0200'):
            self.assertEqual(expected,
                             self.show(**{'Last-Modified': value})[
                                 'updated_at'], value)

    def test_unknowns(self):
        info = self.show(**{'Last-Modified': 'yesterday'})
        self.assertIsNone(info['size'])
        self.assertIsNone(info['updated_at'])
        self.assertIsNone(info['properties']['etag'])

    def test_no_cache(self):
        for value, expected in (('no-store', True),
                                ('private, No-Store, max-age=0', True),
                                ('no-cache', False),
                                ('max-age=3600', False)):
            self.assertEqual(expected, self.show(**{
                'Cache-Control': value})['no_cache'], value)

    def test_size_from_content_range(self):
        self.mocker.head(URL, status_code=405)
        for content_range, size in (('bytes 0-0/987654321', 987654321),
                                    ('bytes 0-0/*', None),
                                    ('nonsense', None)):
            self.mocker.get(URL, status_code=206, content=b'0', headers={
                'Content-Range': content_range, 'Content-Length': '1'})
            self.assertEqual(size, self.service.show(URL)['size'],
                             content_range)

    def test_range_ignored_on_fallback(self):
        self.mocker.head(URL, status_code=501)
        self.mocker.get(URL, content=DATA,
                        headers={'Content-Length': str(len(DATA))})
        self.assertEqual(len(DATA), self.service.show(URL)['size'])


class TestAuth(HttpServiceTestCase):

    def test_no_auth(self):
        self.assertIsNone(http.HttpImageService.gen_auth_from_conf_user_pass(
            URL))

    def test_basic(self):
        self.config(auth_strategy='http_basic', user='user', password='pass',
                    group='http')
        auth = http.HttpImageService.gen_auth_from_conf_user_pass(URL)
        self.assertEqual(('user', 'pass'), (auth.username, auth.password))
        self.mocker.head(URL)
        self.mocker.get(URL, content=DATA)
        self.service.validate_href(URL)
        self.service.download(URL, io.BytesIO())
        self.assertEqual(['Basic dXNlcjpwYXNz'] * 2,
                         [r.headers.get('Authorization')
                          for r in self.mocker.request_history])

    def test_incomplete_credentials(self):
        for user, password in (('user', None), (None, 'pass'), ('', '')):
            self.config(auth_strategy='http_basic', user=user,
                        password=password, group='http')
            self.assertRaises(
                exception.ImageRefValidationFailed,
                http.HttpImageService.gen_auth_from_conf_user_pass, URL)
            self.assertRaises(
                exception.ImageRefValidationFailed,
                http.HttpImageService.verify_basic_auth_cred_format, URL,
                user, password)
        http.HttpImageService.verify_basic_auth_cred_format(URL, 'u', 'p')

    def test_cross_host_redirect_drops_credentials(self):
        self.config(auth_strategy='http_basic', user='user', password='pass',
                    group='http')
        target = 'http://cdn.example.org/disk.img'
        self.mocker.get(URL, status_code=302, headers={'Location': target})
        self.mocker.get(target, content=DATA)
        self.service.download(URL, io.BytesIO())
        self.assertEqual([True, False],
                         ['Authorization' in r.headers
                          for r in self.mocker.request_history])


class TestDownload(HttpServiceTestCase):

    def test_verified(self):
        self.mocker.get(URL, content=DATA,
                        headers={'Content-Length': str(len(DATA))})
        image = io.BytesIO()
        progress = []
        self.service.download(URL, image, checksum=SHA256,
                              progress=lambda *a: progress.append(a))
        self.assertEqual(DATA, image.getvalue())
        self.assertEqual('sha256:' + SHA256,
                         self.service.transfer_verified_checksum)
        self.assertEqual((len(DATA), len(DATA)), progress[-1])

    def test_checksum_mismatch_forgets_the_last_verification(self):
        self.mocker.get(URL, content=DATA)
        self.service.download(URL, io.BytesIO(), checksum=SHA256)
        self.assertIsNotNone(self.service.transfer_verified_checksum)
        wrong = hashlib.sha256(b'other').hexdigest()
        self.assertRaises(exception.ImageChecksumError,
                          self.service.download, URL, io.BytesIO(),
                          checksum=wrong)
        self.assertIsNone(self.service.transfer_verified_checksum)

    def test_short_body_resumed(self):
        headers = {'Content-Length': str(len(DATA)), 'ETag': '"e"'}
        self.mocker.get(URL, [
            {'body': io.BytesIO(DATA[:3000]), 'headers': headers},
            {'status_code': 206, 'body': io.BytesIO(DATA[3000:]),
             'headers': {'Content-Range': 'bytes 3000-%d/%d' % (
                 len(DATA) - 1, len(DATA)), 'ETag': '"e"'}}])
        image = io.BytesIO()
        self.service.download(URL, image, checksum=SHA256)
        self.assertEqual(DATA, image.getvalue())
        self.assertEqual([None, 'bytes=3000-'],
                         [r[2] for r in self.history()])

    def test_longer_body_than_content_length(self):
        # http.client stops at Content-Length; a raw body that does not is
        # still held to it.
        self.mocker.get(URL, content=DATA + b'extra',
                        headers={'Content-Length': str(len(DATA))})
        error = self.assertRaises(exception.ImageDownloadFailed,
                                  self.service.download, URL, io.BytesIO())
        self.assertIn('received more than the %d bytes' % len(DATA),
                      str(error))

    def test_error_status(self):
        self.mocker.get(URL, status_code=404)
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.download, URL, io.BytesIO())

    def test_persistent_5xx(self):
        self.config(retries=1, group='download')
        self.mocker.get(URL, status_code=502)
        self.assertRaises(exception.TemporaryFailure, self.service.download,
                          URL, io.BytesIO())
        self.assertEqual(2, self.mocker.call_count)


class TestGet(HttpServiceTestCase):

    def test_text(self):
        self.mocker.get(URL, content='é  disk.img\n'.encode(),
                        headers={'Content-Type': 'text/plain; charset=utf-8'})
        self.assertEqual('é  disk.img\n', http.HttpImageService.get(URL))

    def test_size_cap(self):
        self.useFixture(fixtures.MockPatchObject(bodies, 'CHECKSUM_FILE', 10))
        self.mocker.get(URL, content=b'x' * 10)
        self.assertEqual('x' * 10, http.HttpImageService.get(URL))
        self.mocker.get(URL, content=b'x' * 11)
        self.assertRaises(exception.ImageDownloadFailed,
                          http.HttpImageService.get, URL)

    def test_error(self):
        self.mocker.get(URL, status_code=404)
        self.assertRaises(exception.ImageRefValidationFailed,
                          http.HttpImageService.get, URL)

    def test_resumed_response_closed(self):
        reopened = []
        real_reopen = http.HttpImageService._reopen

        def reopen(service, image_href, headers):
            response = real_reopen(service, image_href, headers)
            response.close = mock.Mock(wraps=response.close)
            reopened.append(response)
            return response

        self.useFixture(fixtures.MockPatchObject(
            http.HttpImageService, '_reopen', reopen))
        text = b'a' * 64 + b'  disk.img\n'
        self.mocker.get(URL, [
            {'body': io.BytesIO(text[:20]), 'headers': {
                'Content-Length': str(len(text)), 'ETag': '"e"'}},
            {'status_code': 206, 'body': io.BytesIO(text[20:]),
             'headers': {'Content-Range': 'bytes 20-%d/%d' % (
                 len(text) - 1, len(text))}}])
        self.assertEqual(text.decode(), http.HttpImageService.get(URL))
        self.assertEqual(1, len(reopened))
        self.assertTrue(reopened[0].close.called,
                        'the resumed response was left open')
