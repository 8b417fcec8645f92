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

"""Registry credentials and tokens: oci_auth, the client's auth dance and
get_image_service_auth_override."""

import base64
import json
import os
import types
from unittest import mock

import fixtures

from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service.oci import auth as oci_auth
from ironic_images.tests import base
from ironic_images.tests.unit.image_service.oci import test_client as common

REALM = 'https://auth.example.com/token'
BEARER = 'Bearer realm="%s",service="registry.example.com"' % REALM
INVALID = BEARER + ',error="invalid_token"'


def b64(text):
    return base64.b64encode(text.encode()).decode()


def basic(user, password):
    return 'Basic ' + b64('%s:%s' % (user, password))


class TestDecodeSecret(base.TestCase):

    def test_forms(self):
        Creds = oci_auth.Credentials
        cases = [
            (None, None), ('', None), ('  ', None),
            ('user:pass', Creds('user', 'pass', None)),
            ('user:pa:ss', Creds('user', 'pa:ss', None)),
            (b64('user:pass'), Creds('user', 'pass', None)),
            (' %s\n' % b64('robot$x:p:w'), Creds('robot$x', 'p:w', None)),
            (b64('user:'), Creds('user', '', None)),
            ('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln',
             Creds(None, None, 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln')),
            # Valid base64 without a colon inside: a bare token.
            (b64('justatoken'), Creds(None, None, b64('justatoken'))),
            # Base64 of bytes that are not UTF-8: a bare token.
            ('//79', Creds(None, None, '//79')),
        ]
        for secret, expected in cases:
            self.assertEqual(expected, oci_auth.decode_secret(secret),
                             secret)

    def test_repr_hides_secrets(self):
        text = repr(oci_auth.Credentials('user', 'hunter2', 'tok3n'))
        self.assertIn('user', text)
        self.assertNotIn('hunter2', text)
        self.assertNotIn('tok3n', text)

    def test_basic(self):
        self.assertEqual(basic('u', 'p:w'),
                         oci_auth.Credentials('u', 'p:w', None).basic)
        self.assertIsNone(oci_auth.Credentials(None, None, 't').basic)
        self.assertEqual(basic('u', ''),
                         oci_auth.Credentials('u', '', None).basic)

    def test_from_auth_data(self):
        Creds = oci_auth.Credentials
        cases = [
            (None, None), ({}, None),
            ({'username': 'u', 'password': 'p'}, Creds('u', 'p', None)),
            ({'username': '', 'password': 'u:p'}, Creds('u', 'p', None)),
            ({'username': None, 'password': b64('u:p')},
             Creds('u', 'p', None)),
            ({'username': '', 'password': 'tok'}, Creds(None, None, 'tok')),
            ({'token': 'tok', 'username': 'u', 'password': 'p'},
             Creds(None, None, 'tok')),
            ({'username': 'u', 'password': ''}, None),
            ({'username': 'u'}, None),
        ]
        for data, expected in cases:
            self.assertEqual(expected,
                             oci_auth.credentials_from_auth_data(data), data)


class TestParseChallenge(base.TestCase):

    def test_forms(self):
        cases = [
            (None, (None, {})), ('', (None, {})),
            ('Basic realm="test-realm"', ('basic', {'realm': 'test-realm'})),
            ('BASIC', ('basic', {})),
            ('Bearer realm="https://a/token",service="reg",'
             'scope="repository:os/disk:pull",error="invalid_token"',
             ('bearer', {'realm': 'https://a/token', 'service': 'reg',
                         'scope': 'repository:os/disk:pull',
                         'error': 'invalid_token'})),
            ('Bearer realm = "https://a/t" , Service=reg',
             ('bearer', {'realm': 'https://a/t', 'service': 'reg'})),
            ('Bearer realm="a, b",error="x \\"y\\""',
             ('bearer', {'realm': 'a, b', 'error': 'x "y"'})),
            ('Bearer realm="https://a/t?x=1,2"',
             ('bearer', {'realm': 'https://a/t?x=1,2'})),
            ('Bearer garbage', ('bearer', {})),
        ]
        for header, expected in cases:
            self.assertEqual(expected, oci_auth.parse_challenge(header),
                             header)


class TestCredentialsFromConfig(base.TestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(
            self.useFixture(fixtures.TempDir()).path, 'config.json')
        self.config(authentication_config=self.path, group='oci')

    def write(self, content):
        with open(self.path, 'w') as f:
            f.write(content if isinstance(content, str)
                    else json.dumps(content))

    def test_no_option(self):
        self.config(authentication_config=None, group='oci')
        self.assertIsNone(oci_auth.credentials_from_config('reg'))

    def test_entries(self):
        self.write({'auths': {
            'reg.example.com': {'auth': b64('u1:p1')},
            'reg.example.com:5000': {'username': 'u2', 'password': 'p2'},
            'https://index.docker.io/v1/': {'auth': b64('u3:p3')},
            'quay.io/some/repo': {'identitytoken': 'idtok'},
            'tok.example.com': {'registrytoken': 'regtok'},
            'empty.example.com': {},
            'bare.example.com': {'auth': 'bare-token'}}})
        Creds = oci_auth.Credentials
        for host, expected in (
                ('reg.example.com', Creds('u1', 'p1', None)),
                ('reg.example.com:5000', Creds('u2', 'p2', None)),
                ('index.docker.io', Creds('u3', 'p3', None)),
                ('quay.io', Creds(None, None, 'idtok')),
                ('tok.example.com', Creds(None, None, 'regtok')),
                ('empty.example.com', None),
                ('bare.example.com', Creds(None, None, 'bare-token')),
                ('other.example.com', None),
                ('reg.example.com:443', None)):
            self.assertEqual(expected,
                             oci_auth.credentials_from_config(host), host)

    def test_no_auths(self):
        self.write({'credsStore': 'desktop'})
        self.assertIsNone(oci_auth.credentials_from_config('reg'))

    def test_unusable_files(self):
        for content in ('not json', '[]', '{"auths": []}',
                        '{"auths": {"reg": "x"}}', '{"auths": "x"}',
                        '{"auths": {"reg": {"auth": 5}}}'):
            self.write(content)
            error = self.assertRaises(exception.ImageRefValidationFailed,
                                      oci_auth.credentials_from_config,
                                      'reg')
            self.assertIn(self.path, str(error))
        os.unlink(self.path)
        self.assertRaises(exception.ImageRefValidationFailed,
                          oci_auth.credentials_from_config, 'reg')


class TestCredentialsFromAuthFile(base.TestCase):
    """A file named by its user, whatever [oci]authentication_config says."""

    def setUp(self):
        super().setUp()
        self.path = os.path.join(
            self.useFixture(fixtures.TempDir()).path, 'auth.json')
        with open(self.path, 'w') as f:
            json.dump({'auths': {
                '127.0.0.1:5000': {'auth': b64('alice:s3cret')},
                'quay.io': {'identitytoken': 'idtok'}}}, f)

    def test_read_without_the_option(self):
        self.config(authentication_config=None, group='oci')
        self.assertEqual(oci_auth.Credentials('alice', 's3cret', None),
                         oci_auth.credentials_from_auth_file(
                             self.path, '127.0.0.1:5000'))
        self.assertEqual(oci_auth.Credentials(None, None, 'idtok'),
                         oci_auth.credentials_from_auth_file(
                             self.path, 'quay.io'))
        self.assertIsNone(oci_auth.credentials_from_auth_file(
            self.path, '127.0.0.1:5001'))

    def test_unusable_file_names_what_it_is(self):
        with open(self.path, 'w') as f:
            f.write('{"auths": "x"}')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  oci_auth.credentials_from_auth_file,
                                  self.path, 'quay.io', '--authfile')
        self.assertIn('cannot use --authfile %s' % self.path, str(error))
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  oci_auth.credentials_from_auth_file,
                                  self.path + '.missing', 'quay.io')
        self.assertIn('the credentials file', str(error))
        self.assertNotIn('s3cret', str(error))


class TestTokenCache(base.TestCase):

    def test_lifetime(self):
        now = self.useFixture(fixtures.MockPatch(
            'ironic_images.image_service.oci.auth.time.monotonic',
            return_value=100.0)).mock
        cache = oci_auth.TokenCache()
        self.assertIsNone(cache.get('k'))
        cache.put('k', 'tok', 300)
        now.return_value = 389.0
        self.assertEqual('tok', cache.get('k'))
        now.return_value = 390.0  # renewed 10 s before it says
        self.assertIsNone(cache.get('k'))
        cache.put('short', 'tok', 5)
        self.assertEqual('tok', cache.get('short'))
        now.return_value = 391.0
        self.assertIsNone(cache.get('short'))
        cache.put('k', 'tok2', 300)
        cache.forget('k')
        cache.forget('never')
        self.assertIsNone(cache.get('k'))

    def test_token_lifetime(self):
        for body, expected in (({}, 60), ({'expires_in': 300}, 300),
                               ({'expires_in': '120'}, 120),
                               ({'expires_in': 'soon'}, 60),
                               ({'expires_in': None}, 60),
                               ({'expires_in': 0}, 60),
                               ({'expires_in': -5}, 60)):
            self.assertEqual(expected, oci_auth.token_lifetime(body), body)


class TestAuthOverride(base.TestCase):

    def node(self, instance=None, driver=None):
        return types.SimpleNamespace(
            instance_info={'image_pull_secret': instance} if instance else {},
            driver_info={'image_pull_secret': driver} if driver else {})

    def test_order(self):
        get = image_service.get_image_service_auth_override
        self.assertEqual({'username': '', 'password': 'mine'},
                         get(self.node('mine', 'admin')))
        self.assertEqual({'username': '', 'password': 'admin'},
                         get(self.node('mine', 'admin'),
                             permit_user_auth=False))
        self.assertEqual({'username': '', 'password': 'admin'},
                         get(self.node(None, 'admin')))
        self.assertIsNone(get(self.node()))
        self.assertIsNone(get(object()))
        self.assertIsNone(get(types.SimpleNamespace(instance_info=None,
                                                    driver_info=None)))

    def test_http_basic_config(self):
        self.config(auth_strategy='http_basic', user='cu', password='cp',
                    group='http')
        get = image_service.get_image_service_auth_override
        self.assertEqual({'username': 'cu', 'password': 'cp'},
                         get(self.node()))
        self.assertEqual({'username': '', 'password': 'admin'},
                         get(self.node(None, 'admin')))


class AuthDanceTestCase(common.ClientTestCase):

    def setUp(self):
        super().setUp()
        self.tokens = self.mocker.get(REALM, [
            {'json': {'token': 'tok%d' % n, 'expires_in': 300}}
            for n in range(1, 10)])

    def manifest(self, answers, ref=common.MANIFEST_DIGEST):
        self.mocker.get(common.manifest_url(ref), answers)

    def sent_auth(self, url=None):
        return [r.headers.get('Authorization')
                for r in self.mocker.request_history
                if r.url.startswith(url or common.BASE)]

    def token_requests(self):
        return [r for r in self.mocker.request_history
                if r.url.startswith(REALM)]


def challenge(header=BEARER, status=401):
    return {'status_code': status, 'headers': {'Www-Authenticate': header}}


OK = {'content': common.MANIFEST}


class TestBearer(AuthDanceTestCase):

    def test_anonymous_token(self):
        self.manifest([challenge(), OK, OK])
        self.client.get_manifest(common.DIGEST_HREF)
        self.client.get_manifest(common.DIGEST_HREF)
        self.assertEqual([None, 'Bearer tok1', 'Bearer tok1'],
                         self.sent_auth())
        token_request, = self.token_requests()
        self.assertEqual({'scope': ['repository:os/disk:pull'],
                          'service': ['registry.example.com']},
                         token_request.qs)
        self.assertNotIn('Authorization', token_request.headers)
        self.assertEqual('Bearer tok1',
                         self.client.get_cached_auth(common.TAG_HREF))

    def test_basic_authenticated_token(self):
        self.client.authenticate(common.TAG_HREF, 'user', 'pw')
        self.manifest([challenge(), OK])
        self.client.get_manifest(common.DIGEST_HREF)
        self.assertEqual(basic('user', 'pw'),
                         self.token_requests()[0].headers['Authorization'])

    def test_token_cached_per_scope(self):
        self.manifest([challenge(), OK])
        self.client.get_manifest(common.DIGEST_HREF)
        # Another repository of the same registry: another scope.
        other = common.manifest_url(common.MANIFEST_DIGEST).replace(
            'os/disk', 'os/other')
        self.mocker.get(other, [challenge(), OK])
        self.client.get_manifest(common.DIGEST_HREF.replace('os/disk',
                                                            'os/other'))
        self.assertEqual(['repository:os/disk:pull',
                          'repository:os/other:pull'],
                         [r.qs['scope'][0] for r in self.token_requests()])

    def test_expired_in_cache_is_fetched_again(self):
        now = self.useFixture(fixtures.MockPatch(
            'ironic_images.image_service.oci.auth.time.monotonic',
            return_value=0.0)).mock
        self.manifest([challenge(), OK, challenge(), OK])
        self.client.get_manifest(common.DIGEST_HREF)
        self.client.registry._authorization.clear()
        now.return_value = 1000.0
        self.client.get_manifest(common.DIGEST_HREF)
        self.assertEqual(2, len(self.token_requests()))

    def test_invalid_token_renewed_once(self):
        self.manifest([challenge(), OK, challenge(INVALID), OK])
        self.client.get_manifest(common.DIGEST_HREF)
        self.client.get_manifest(common.DIGEST_HREF)
        self.assertEqual([None, 'Bearer tok1', 'Bearer tok1', 'Bearer tok2'],
                         self.sent_auth())
        self.assertEqual(2, len(self.token_requests()))

    def test_invalid_token_not_renewed_twice(self):
        self.manifest([challenge(), OK] + [challenge(INVALID)] * 5)
        self.client.get_manifest(common.DIGEST_HREF)
        self.assertRaises(exception.ImageServiceAuthenticationRequired,
                          self.client.get_manifest, common.DIGEST_HREF)
        # The cached token, refused, then one renewal: no more.
        self.assertEqual(2, len(self.token_requests()))
        self.assertEqual([None, 'Bearer tok1', 'Bearer tok1', 'Bearer tok2'],
                         self.sent_auth())

    def test_insufficient_scope(self):
        self.manifest([challenge(), challenge(
            BEARER + ',error="insufficient_scope"')])
        self.assertRaises(exception.ImageServiceAuthenticationRequired,
                          self.client.get_manifest, common.DIGEST_HREF)
        self.assertEqual(1, len(self.token_requests()))

    def test_registry_token_credentials(self):
        self.client.authenticate(common.TAG_HREF, token='given')
        self.manifest([challenge(), OK])
        self.client.get_manifest(common.DIGEST_HREF)
        self.assertEqual([None, 'Bearer given'], self.sent_auth())
        self.assertEqual([], self.token_requests())

    def test_realm_missing(self):
        self.manifest([challenge('Bearer service="x"')])
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.client.get_manifest, common.DIGEST_HREF)

    def test_token_service_refuses(self):
        for status in (401, 403, 404):
            self.mocker.get(REALM, status_code=status)
            self.manifest([challenge()])
            self.assertRaises(exception.ImageServiceAuthenticationRequired,
                              self.client.get_manifest, common.DIGEST_HREF)

    def test_token_service_down(self):
        self.mocker.get(REALM, status_code=503)
        self.manifest([challenge()])
        self.assertRaises(exception.TemporaryFailure,
                          self.client.get_manifest, common.DIGEST_HREF)

    def test_malformed_token_responses(self):
        for answer in ({'text': 'not json'}, {'json': []}, {'json': {}},
                       {'json': {'token': ''}}, {'json': {'token': None}}):
            self.mocker.get(REALM, **answer)
            self.manifest([challenge()])
            self.assertRaises(exception.ImageRefValidationFailed,
                              self.client.get_manifest, common.DIGEST_HREF)

    def test_token_that_is_not_a_string(self):
        for token in (42, ['a'], {'a': 'b'}):
            self.mocker.get(REALM, json={'token': token})
            self.manifest([challenge()])
            self.assertRaises(exception.ImageRefValidationFailed,
                              self.client.get_manifest, common.DIGEST_HREF)

    def test_access_token_field(self):
        self.mocker.get(REALM, json={'access_token': 'acc'})
        self.manifest([challenge(), OK])
        self.client.get_manifest(common.DIGEST_HREF)
        self.assertEqual('Bearer acc', self.sent_auth()[-1])


class TestBasic(AuthDanceTestCase):

    BASIC = 'Basic realm="test-realm"'

    def test_credentials(self):
        self.client.authenticate(common.TAG_HREF, 'user', 'pw')
        self.manifest([challenge(self.BASIC), OK, OK])
        self.client.get_manifest(common.DIGEST_HREF)
        self.client.get_manifest(common.DIGEST_HREF)
        self.assertEqual([None, basic('user', 'pw'), basic('user', 'pw')],
                         self.sent_auth())
        self.assertEqual(basic('user', 'pw'),
                         self.client.get_cached_auth(common.DIGEST_HREF))

    def test_pull_secret_as_password(self):
        self.client.authenticate(common.TAG_HREF, None, b64('u:p'))
        self.manifest([challenge(self.BASIC), OK])
        self.client.get_manifest(common.DIGEST_HREF)
        self.assertEqual(basic('u', 'p'), self.sent_auth()[-1])

    def test_wrong_credentials_sent_once(self):
        self.client.authenticate(common.TAG_HREF, 'user', 'wrong')
        self.manifest([challenge(self.BASIC)] * 5)
        error = self.assertRaises(
            exception.ImageServiceAuthenticationRequired,
            self.client.get_manifest, common.DIGEST_HREF)
        self.assertNotIn('wrong', str(error))
        self.assertEqual([None, basic('user', 'wrong')], self.sent_auth())

    def test_no_credentials(self):
        for header in (self.BASIC, 'Negotiate', None):
            answer = ({'status_code': 401} if header is None
                      else challenge(header))
            self.manifest([answer])
            self.assertRaises(exception.ImageServiceAuthenticationRequired,
                              self.client.get_manifest, common.DIGEST_HREF)

    def test_authenticate_again_forgets_the_cached_header(self):
        self.client.authenticate(common.TAG_HREF, 'user', 'pw')
        self.manifest([challenge(self.BASIC), OK, challenge(self.BASIC), OK])
        self.client.get_manifest(common.DIGEST_HREF)
        self.client.authenticate(common.TAG_HREF, 'other', 'pw2')
        self.assertIsNone(self.client.get_cached_auth(common.TAG_HREF))
        self.client.get_manifest(common.DIGEST_HREF)
        self.assertEqual([None, basic('user', 'pw'), None,
                          basic('other', 'pw2')], self.sent_auth())

    def test_credentials_from_config_per_host(self):
        self.config(authentication_config='/cfg.json', group='oci')
        creds = oci_auth.Credentials('cfg', 'pw', None)
        with mock.patch.object(oci_auth, 'credentials_from_config',
                               autospec=True,
                               return_value=creds) as from_config:
            self.manifest([challenge(self.BASIC), OK, OK])
            self.client.get_manifest(common.DIGEST_HREF)
            self.client.get_manifest(common.DIGEST_HREF)
        from_config.assert_called_once_with(common.HOST)
        self.assertEqual(basic('cfg', 'pw'), self.sent_auth()[-1])

    def test_caller_credentials_win_over_config(self):
        with mock.patch.object(oci_auth, 'credentials_from_config',
                               autospec=True) as cfg:
            self.client.authenticate(common.TAG_HREF, 'user', 'pw')
            self.manifest([challenge(self.BASIC), OK])
            self.client.get_manifest(common.DIGEST_HREF)
        cfg.assert_not_called()
        self.assertEqual(basic('user', 'pw'), self.sent_auth()[-1])


class TestMirrorCredentials(AuthDanceTestCase):

    def test_origin_credentials_stay_with_the_origin(self):
        self.config(registry_mirrors=['%s=mirror.example.com' % common.HOST],
                    group='oci')
        self.client.authenticate(common.TAG_HREF, 'user', 'pw')
        mirror = 'https://mirror.example.com'
        self.mocker.get(common.manifest_url(common.MANIFEST_DIGEST, mirror),
                        [challenge('Basic realm="m"')])
        self.manifest([challenge('Basic realm="o"'), OK])
        self.client.get_manifest(common.DIGEST_HREF)
        self.assertEqual([None], self.sent_auth(mirror))
        self.assertEqual([None, basic('user', 'pw')], self.sent_auth())
