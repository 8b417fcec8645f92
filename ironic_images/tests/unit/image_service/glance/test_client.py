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

import logging

import fixtures
from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
from oslo_config import cfg
from oslo_context import context as oslo_context
import requests

from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.image_service.glance import client as glance_client
from ironic_images.tests.unit.image_service.glance import glance_base

ENDPOINT = glance_base.ENDPOINT
ID = '6b1c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3'
PATH = '/v2/images/%s' % ID
URL = ENDPOINT + PATH
USER_TOKEN = 'user-token-0123456789'
SERVICE_TOKEN = 'service-token-9876543210'
KEYSTONE = 'http://keystone.test/v3'


class GlanceClientTestCase(glance_base.GlanceMockTestCase):

    def setUp(self):
        super().setUp()

    def client(self, context=None, adapter=None):
        return glance_client.GlanceClient(adapter=adapter, context=context)


class TestEndpointAndAuth(GlanceClientTestCase):

    def test_endpoint_override_without_auth(self):
        self.mocker.get(URL, json={'id': ID})
        self.assertEqual({'id': ID},
                         self.client().json('GET', PATH, ID))
        request = self.mocker.last_request
        # keystoneauth's "none" plugin sends a placeholder.
        self.assertEqual('notused',
                         request.headers.get('X-Auth-Token', 'notused'))
        self.assertEqual('application/json', request.headers['Accept'])

    def test_version_suffix_is_dropped(self):
        for override in (ENDPOINT + '/v2', ENDPOINT + '/v2.1/',
                         ENDPOINT + '/'):
            glance_client._SESSIONS.clear()
            self.config(endpoint_override=override, group='glance')
            self.assertEqual(ENDPOINT, self.client().endpoint(ID))

    def test_user_token_from_context(self):
        self.mocker.get(URL, json={})
        context = oslo_context.RequestContext(auth_token=USER_TOKEN,
                                              global_request_id='req-1')
        self.client(context).request('GET', PATH, ID)
        headers = self.mocker.last_request.headers
        self.assertEqual(USER_TOKEN, headers['X-Auth-Token'])
        self.assertEqual('req-1', headers['X-OpenStack-Request-ID'])

    def test_context_without_token_uses_service_auth(self):
        self._plugin('admin_token')
        self.config(token=SERVICE_TOKEN, endpoint=ENDPOINT, group='glance')
        self.mocker.get(URL, json={})
        self.client(oslo_context.RequestContext()).request('GET', PATH, ID)
        self.assertEqual(SERVICE_TOKEN,
                         self.mocker.last_request.headers['X-Auth-Token'])

    def test_context_token_wins_over_service_auth(self):
        self._plugin('admin_token')
        self.config(token=SERVICE_TOKEN, endpoint=ENDPOINT, group='glance')
        self.mocker.get(URL, json={})
        context = oslo_context.RequestContext(auth_token=USER_TOKEN)
        self.client(context).request('GET', PATH, ID)
        self.assertEqual(USER_TOKEN,
                         self.mocker.last_request.headers['X-Auth-Token'])

    def _keystone(self, status=201):
        catalog = [{'type': 'image', 'name': 'glance', 'endpoints': [
            {'interface': 'public', 'region': 'R1', 'region_id': 'R1',
             'url': 'http://glance.catalog:9292/v2'}]}]
        self.mocker.post(KEYSTONE + '/auth/tokens', status_code=status,
                         headers={'X-Subject-Token': SERVICE_TOKEN},
                         json={'token': {
                             'expires_at': '2999-01-01T00:00:00Z',
                             'methods': ['password'],
                             'user': {'id': 'u', 'name': 'ironic',
                                      'domain': {'id': 'default',
                                                 'name': 'Default'}},
                             'project': {'id': 'p', 'name': 'service',
                                         'domain': {'id': 'default',
                                                    'name': 'Default'}},
                             'catalog': catalog}})

    def _plugin(self, name):
        options = ks_loading.get_auth_plugin_conf_options(name)
        # Another plugin loaded by an earlier test may have registered an
        # option of the same name but another definition; loading the auth
        # registers what it needs again.
        for option in options:
            if option.dest in CONF.glance:
                CONF.unregister_opt(option, group='glance')
        self.cfg_fixture.register_opts(options, group='glance')
        self.config(auth_type=name, group='glance')

    def _password_auth(self):
        self._plugin('v3password')
        self.config(endpoint_override=None, group='glance')
        self.config(auth_url=KEYSTONE, username='ironic',
                    password='s3cret-pass', project_name='service',
                    user_domain_id='default', project_domain_id='default',
                    group='glance')

    def test_catalog_endpoint_and_service_token(self):
        self._password_auth()
        self._keystone()
        url = 'http://glance.catalog:9292' + PATH
        self.mocker.get(url, json={'id': ID})
        self.assertEqual({'id': ID}, self.client().json('GET', PATH, ID))
        self.assertEqual(SERVICE_TOKEN,
                         self.mocker.last_request.headers['X-Auth-Token'])
        # A user's token goes to the endpoint the service's catalog gave.
        context = oslo_context.RequestContext(auth_token=USER_TOKEN)
        self.client(context).request('GET', PATH, ID)
        self.assertEqual(url, self.mocker.last_request.url)
        self.assertEqual(USER_TOKEN,
                         self.mocker.last_request.headers['X-Auth-Token'])

    def test_service_session_is_shared(self):
        self._password_auth()
        self._keystone()
        self.mocker.get('http://glance.catalog:9292' + PATH, json={})
        for _i in range(3):
            self.client().request('GET', PATH, ID)
        tokens = [r for r in self.mocker.request_history
                  if r.url.endswith('/auth/tokens')]
        self.assertEqual(1, len(tokens))

    def test_keystone_refuses_service_credentials(self):
        self._password_auth()
        self._keystone(status=401)
        error = self.assertRaises(
            exception.ImageServiceAuthenticationRequired,
            self.client().request, 'GET', PATH, ID)
        self.assertIn('[glance] credentials', str(error))
        self.assertNotIn('s3cret-pass', str(error))

    def test_incomplete_auth_options(self):
        self._plugin('v3password')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.client().request, 'GET', PATH, ID)
        self.assertIn('incomplete', str(error))
        self.assertIn('auth_url', str(error))
        self.assertIn(ID, str(error))

    def test_conflicting_options(self):
        self.useFixture(fixtures.MockPatch(
            'keystoneauth1.loading.load_auth_from_conf_options',
            side_effect=cfg.DuplicateOptError('endpoint')))
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.client().request, 'GET', PATH, ID)
        self.assertIn('endpoint', str(error))

    def test_no_endpoint(self):
        self.config(endpoint_override=None, group='glance')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.client().request, 'GET', PATH, ID)
        self.assertIn('endpoint_override', str(error))
        self.assertIn(ID, str(error))

    def test_preconfigured_adapter(self):
        adapter = ks_adapter.Adapter(
            session=ks_session.Session(),
            endpoint_override='http://other.test:1234/v2')
        self.mocker.get('http://other.test:1234' + PATH, json={'id': ID})
        self.assertEqual({'id': ID},
                         self.client(adapter=adapter).json('GET', PATH, ID))

    def test_timeout_defaults_to_webserver_timeout(self):
        self.config(webserver_connection_timeout=17)
        self.mocker.get(URL, json={})
        self.client().request('GET', PATH, ID)
        self.assertEqual(17, self.mocker.last_request.timeout)

    def test_timeout_option(self):
        self.config(timeout=5, group='glance')
        self.mocker.get(URL, json={})
        self.client().request('GET', PATH, ID)
        self.assertEqual(5, self.mocker.last_request.timeout)


class TestRetries(GlanceClientTestCase):

    def test_503_then_success(self):
        self.mocker.get(URL, [{'status_code': 503}, {'status_code': 503},
                              {'json': {'id': ID}}])
        self.assertEqual({'id': ID}, self.client().json('GET', PATH, ID))
        self.assertEqual(3, self.mocker.call_count)
        self.assertEqual(2, self.sleep.call_count)

    def test_503_persists(self):
        self.config(num_retries=2, group='glance')
        self.mocker.get(URL, status_code=503, text='busy')
        error = self.assertRaises(exception.TemporaryFailure,
                                  self.client().request, 'GET', PATH, ID)
        self.assertEqual(3, self.mocker.call_count)
        self.assertIn('HTTP 503', str(error))
        self.assertIn('3 attempts', str(error))
        self.assertIn(ID, str(error))

    def test_no_retries(self):
        self.config(num_retries=0, group='glance')
        self.mocker.get(URL, status_code=503)
        self.assertRaises(exception.TemporaryFailure,
                          self.client().request, 'GET', PATH, ID)
        self.assertEqual(1, self.mocker.call_count)
        self.sleep.assert_not_called()

    def test_connection_errors_then_success(self):
        self.mocker.get(URL, [{'exc': requests.exceptions.ConnectionError},
                              {'exc': requests.exceptions.ConnectTimeout},
                              {'json': {}}])
        self.client().request('GET', PATH, ID)
        self.assertEqual(3, self.mocker.call_count)

    def test_connection_errors_persist(self):
        self.config(num_retries=1, group='glance')
        self.mocker.get(URL, exc=requests.exceptions.ConnectionError(
            'refused'))
        error = self.assertRaises(exception.TemporaryFailure,
                                  self.client().request, 'GET', PATH, ID)
        self.assertEqual(2, self.mocker.call_count)
        self.assertIn('ConnectFailure', str(error))

    def test_retry_after_is_honoured(self):
        self.mocker.get(URL, [{'status_code': 429,
                               'headers': {'Retry-After': '7'}},
                              {'json': {}}])
        self.client().request('GET', PATH, ID)
        self.sleep.assert_called_once_with(7.0)

    def test_429_persists(self):
        self.config(num_retries=1, group='glance')
        self.mocker.get(URL, status_code=429)
        self.assertRaises(exception.ImageHostRateLimitFailure,
                          self.client().request, 'GET', PATH, ID)

    def test_500_is_not_retried(self):
        self.mocker.get(URL, status_code=500, text='boom')
        error = self.assertRaises(exception.ImageDownloadFailed,
                                  self.client().request, 'GET', PATH, ID,
                                  error_class=exception.ImageDownloadFailed)
        self.assertEqual(1, self.mocker.call_count)
        self.assertIn('HTTP 500: boom', str(error))

    def test_tls_failure_is_not_retried(self):
        self.mocker.get(URL, exc=requests.exceptions.SSLError('bad cert'))
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.client().request, 'GET', PATH, ID)
        self.assertEqual(1, self.mocker.call_count)
        self.assertIn('SSLError', str(error))

    def test_upload_is_sent_once(self):
        self.mocker.put(URL + '/file', status_code=503)
        self.assertRaises(exception.TemporaryFailure,
                          self.client().request, 'PUT', PATH + '/file', ID,
                          retries=0, data=iter([b'data']))
        self.assertEqual(1, self.mocker.call_count)


class TestStatusMapping(GlanceClientTestCase):

    def check(self, status, error_class, **kwargs):
        self.mocker.get(URL, status_code=status, **kwargs)
        error = self.assertRaises(error_class, self.client().request,
                                  'GET', PATH, ID)
        self.assertIn(ID, str(error))
        self.assertEqual(1, self.mocker.call_count)
        return error

    def test_401(self):
        self.check(401, exception.ImageServiceAuthenticationRequired)

    def test_403(self):
        error = self.check(403, exception.ImageNotAuthorized)
        self.assertNotIsInstance(
            error, exception.ImageServiceAuthenticationRequired)

    def test_404(self):
        self.check(404, exception.ImageNotFound)

    def test_400_carries_glance_message(self):
        error = self.check(
            400, exception.ImageRefValidationFailed,
            text='<html><body><h1>400 Bad Request</h1>Invalid disk format '
                 '&#x27;foo&#x27;</body></html>')
        self.assertIn('invalid', str(error))
        self.assertIn('HTTP 400: 400 Bad Request Invalid disk format',
                      str(error))
        self.assertNotIn('<h1>', str(error))

    def test_409_json_message(self):
        error = self.check(409, exception.ImageRefValidationFailed,
                           json={'message': 'Image status is not queued'})
        self.assertIn('HTTP 409: Image status is not queued', str(error))

    def test_long_message_is_cut(self):
        error = self.check(400, exception.ImageRefValidationFailed,
                           text='x' * 5000)
        self.assertLess(len(str(error)), 600)

    def test_body_not_json(self):
        self.mocker.get(URL, text='not json')
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.client().json, 'GET', PATH, ID)

    def test_body_nested_too_deep(self):
        # json raises RecursionError, not ValueError, for such a body.
        self.mocker.get(URL, text='[' * 50000)
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.client().json, 'GET', PATH, ID)
        self.mocker.get(URL, status_code=400, text='[' * 50000)
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.client().json, 'GET', PATH, ID)
        self.assertIn('HTTP 400', str(error))

    def test_empty_body(self):
        self.mocker.delete(URL, status_code=204)
        self.assertIsNone(self.client().json('DELETE', PATH, ID))


class TestSecrets(GlanceClientTestCase):

    def test_token_never_logged_nor_in_messages(self):
        logger = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        self.config(num_retries=1, group='glance')
        self.mocker.get(URL, status_code=503)
        context = oslo_context.RequestContext(auth_token=USER_TOKEN)
        error = self.assertRaises(exception.TemporaryFailure,
                                  self.client(context).request,
                                  'GET', PATH, ID)
        self.mocker.get(URL, status_code=401)
        error2 = self.assertRaises(
            exception.ImageServiceAuthenticationRequired,
            self.client(context).request, 'GET', PATH, ID)
        self.assertIn('retrying', logger.output)
        for text in (logger.output, str(error), str(error2)):
            self.assertNotIn(USER_TOKEN, text)

    def test_redirect_is_not_followed(self):
        # keystoneauth would follow it with the user's X-Auth-Token.
        away = 'http://elsewhere.test/image'
        self.mocker.get(away, text='stolen')
        self.mocker.get(URL + '/file', status_code=302,
                        headers={'Location': away})
        context = oslo_context.RequestContext(auth_token=USER_TOKEN)
        error = self.assertRaises(
            exception.ImageDownloadFailed, self.client(context).request,
            'GET', PATH + '/file', ID,
            error_class=exception.ImageDownloadFailed)
        self.assertIn('HTTP 302', str(error))
        response = self.client(context).reopen(PATH + '/file', ID,
                                               {'Range': 'bytes=5-'})
        self.assertEqual(302, response.status_code)
        self.assertEqual([URL + '/file'] * 2,
                         [r.url for r in self.mocker.request_history])


class TestReopen(GlanceClientTestCase):

    def test_connection_failure_is_a_drop(self):
        self.mocker.get(URL + '/file',
                        exc=requests.exceptions.ConnectionError('reset'))
        self.assertRaises(requests.ConnectionError, self.client().reopen,
                          PATH + '/file', ID, {'Range': 'bytes=5-'})

    def test_any_status_is_returned(self):
        self.mocker.get(URL + '/file', status_code=503)
        context = oslo_context.RequestContext(auth_token=USER_TOKEN,
                                              global_request_id='req-2')
        response = self.client(context).reopen(PATH + '/file', ID,
                                               {'Range': 'bytes=5-'})
        headers = self.mocker.last_request.headers
        self.assertEqual(USER_TOKEN, headers['X-Auth-Token'])
        self.assertEqual('req-2', headers['X-OpenStack-Request-ID'])
        self.assertEqual(503, response.status_code)
        self.assertEqual('bytes=5-',
                         self.mocker.last_request.headers['Range'])
        self.assertEqual(1, self.mocker.call_count)
