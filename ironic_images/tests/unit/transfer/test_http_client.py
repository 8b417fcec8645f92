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
import logging
import socket
import ssl
from unittest import mock

import fixtures
import requests
import requests_mock.contrib.fixture
import urllib3

from ironic_images import exception
from ironic_images.tests import base
from ironic_images.transfer import http_client

URL = 'http://example.com/disk.img'


class ParseTestCase(base.TestCase):

    def test_http_dates_in_every_format(self):
        expected = datetime.datetime(1994, 11, 6, 8, 49, 37)
        for value in ('Sun, 06 Nov 1994 08:49:37 GMT',
                      'Sunday, 06-Nov-94 08:49:37 GMT',
                      'Sun Nov  6 08:49:37 1994'):
            self.assertEqual(expected, http_client.parse_http_date(value),
                             value)

    def test_http_date_with_offset_is_utc(self):
        self.assertEqual(
            datetime.datetime(1994, 11, 6, 6, 49, 37),
            http_client.parse_http_date('Sun, 06 Nov 1994 08:49:37 +0200'))

    def test_bad_http_dates(self):
        for value in (None, '', 'yesterday', 'Sun, 99 Nov 1994 08:49:37'):
            self.assertIsNone(http_client.parse_http_date(value), value)

    def test_retry_after_seconds_capped(self):
        response = mock.Mock(headers={'Retry-After': '3'})
        self.assertEqual(3.0, http_client.retry_after(response))
        response.headers['Retry-After'] = '86400'
        self.assertEqual(http_client.MAX_RETRY_AFTER,
                         http_client.retry_after(response))

    def test_retry_after_date_and_garbage(self):
        response = mock.Mock(headers={
            'Retry-After': 'Sun, 06 Nov 1994 08:49:37 GMT'})
        self.assertEqual(0.0, http_client.retry_after(response))
        response.headers['Retry-After'] = 'soon'
        self.assertIsNone(http_client.retry_after(response))
        self.assertIsNone(http_client.retry_after(None))

    def test_verify_setting(self):
        self.assertIs(True, http_client.verify_setting('True'))
        self.assertIs(False, http_client.verify_setting('false'))
        ca = self.create_tempfiles([('ca', b'')], ext='.pem')[0]
        self.assertEqual(ca, http_client.verify_setting(ca))
        self.assertRaises(exception.ImageRefValidationFailed,
                          http_client.verify_setting, '/no/such/ca.pem')

    def test_backoff_grows_and_honours_retry_after(self):
        self.assertLessEqual(http_client.backoff(1),
                             http_client.BACKOFF_BASE)
        self.assertLessEqual(http_client.backoff(30),
                             http_client.BACKOFF_MAX)
        response = mock.Mock(headers={'Retry-After': '2'})
        self.assertEqual(2.0, http_client.backoff(1, response))


class RequestTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.sleep = self.useFixture(
            fixtures.MockPatch('tenacity.nap.time.sleep')).mock
        self.session = http_client.new_session()
        self.mocker = self.useFixture(
            requests_mock.contrib.fixture.Fixture())

    def _get(self, **kwargs):
        return http_client.request(self.session, 'GET', URL, verify=True,
                                   timeout=(1, 1), **kwargs)

    def test_success_passes_through(self):
        self.mocker.get(URL, text='ok')
        self.assertEqual('ok', self._get().text)
        self.assertEqual('identity',
                         self.mocker.last_request.headers['Accept-Encoding'])

    def test_client_errors_are_returned_not_retried(self):
        self.mocker.get(URL, status_code=404)
        self.assertEqual(404, self._get().status_code)
        self.assertEqual(1, self.mocker.call_count)

    def test_503_then_success(self):
        self.mocker.get(URL, [{'status_code': 503}, {'status_code': 502},
                              {'text': 'ok'}])
        self.assertEqual('ok', self._get().text)
        self.assertEqual(3, self.mocker.call_count)

    def test_persistent_5xx_is_temporary_failure(self):
        self.mocker.get(URL, status_code=503)
        error = self.assertRaises(exception.TemporaryFailure, self._get,
                                  retries=2)
        self.assertEqual(3, self.mocker.call_count)
        self.assertIn('HTTP 503 after 3 attempts', str(error))

    def test_persistent_429_is_rate_limit_and_waits_as_asked(self):
        self.mocker.get(URL, status_code=429, headers={'Retry-After': '7'})
        self.assertRaises(exception.ImageHostRateLimitFailure, self._get,
                          retries=1)
        self.sleep.assert_called_once_with(7.0)

    def test_connection_error_retried_then_mapped(self):
        self.mocker.get(URL, exc=requests.ConnectionError('refused'))
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self._get, retries=1,
                                  error_class=exception
                                  .ImageRefValidationFailed)
        self.assertEqual(2, self.mocker.call_count)
        self.assertIn('refused', str(error))

    def test_tls_failure_not_retried(self):
        self.mocker.get(URL, exc=requests.exceptions.SSLError('bad cert'))
        error = self.assertRaises(exception.ImageDownloadFailed, self._get)
        self.assertEqual(1, self.mocker.call_count)
        self.assertIn('TLS failure', str(error))

    def test_too_many_redirects(self):
        self.mocker.get(URL, exc=requests.TooManyRedirects())
        error = self.assertRaises(exception.ImageDownloadFailed, self._get)
        self.assertIn('redirect loop', str(error))

    def test_secret_query_masked_in_errors(self):
        url = URL + '?temp_url_sig=s3cr3t'
        self.mocker.get(url, exc=requests.ConnectionError(
            'Max retries exceeded with url: /disk.img?temp_url_sig=s3cr3t'))
        error = self.assertRaises(
            exception.ImageDownloadFailed, http_client.request,
            self.session, 'GET', url, retries=0, verify=True,
            timeout=(1, 1))
        self.assertNotIn('s3cr3t', str(error))

    def test_secret_query_masked_in_retry_log_lines(self):
        logs = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        url = URL + '?temp_url_sig=s3cr3t'
        self.mocker.get(url, exc=requests.ConnectionError(
            'Max retries exceeded with url: /disk.img?temp_url_sig=s3cr3t'))
        self.assertRaises(
            exception.ImageDownloadFailed, http_client.request,
            self.session, 'GET', url, retries=1, verify=True,
            timeout=(1, 1))
        self.assertIn('retrying', logs.output)
        self.assertNotIn('s3cr3t', logs.output)


class DescribeTestCase(base.TestCase):
    """Why a request failed, in the words of the system, not three reprs."""

    def _closed_port(self):
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
            return probe.getsockname()[1]

    def test_refused_connection(self):
        port = self._closed_port()
        url = 'http://u:pw9@127.0.0.1:%d/disk.img' % port
        session = http_client.new_session()
        error = self.assertRaises(
            exception.ImageDownloadFailed, http_client.request, session,
            'GET', url, retries=0, verify=True, timeout=5)
        reason = error.kwargs['reason']
        self.assertEqual('cannot connect to 127.0.0.1:%d: Connection '
                         'refused' % port, reason)
        self.assertNotIn('pw9', str(error))
        self.assertNotIn('HTTPConnectionPool', str(error))

    def test_connection_error_without_a_system_error(self):
        error = requests.ConnectionError('odd')
        self.assertEqual('ConnectionError: odd',
                         http_client.describe(error, URL, URL))

    def test_tls_failure_says_what_tls_said(self):
        root = ssl.SSLError(1, '[SSL: WRONG_VERSION_NUMBER] wrong version')
        error = requests.exceptions.SSLError(
            urllib3.exceptions.MaxRetryError(None, URL, reason=root))
        self.assertEqual('TLS failure: [SSL: WRONG_VERSION_NUMBER] wrong '
                         'version', http_client.describe(error, URL, URL))
