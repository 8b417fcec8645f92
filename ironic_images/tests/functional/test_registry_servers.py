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
"""Self-tests of the OCI registry, token server and push helpers."""

import base64
import hashlib
import json
import os

import fixtures
import jwt
from oslotest import base as test_base
import requests

from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import registry
from ironic_images.tests.functional.servers import tls
from ironic_images.tests.functional.servers import token_server

DATA = bytes(range(256)) * 1024  # 256 KiB
REPO = 'images/disk'


def _files():
    return {'amd64': {'qcow2': b'Q' * 1000, 'raw': b'R' * 2000,
                      'raw.zst': b'Z' * 300},
            'arm64': {'qcow2': b'q' * 1100, 'raw': b'r' * 2100}}


class RegistryTestCase(test_base.BaseTestCase):

    def setUp(self):
        super(RegistryTestCase, self).setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def get(self, url, **kwargs):
        kwargs.setdefault('timeout', 10)
        return requests.get(url, **kwargs)


class TestAnonymousRegistry(RegistryTestCase):

    def setUp(self):
        super(TestAnonymousRegistry, self).setUp()
        self.registry = self.useFixture(registry.RegistryFixture())

    def test_attributes(self):
        port = self.registry.port
        self.assertEqual('http://127.0.0.1:%d' % port, self.registry.url)
        self.assertEqual('127.0.0.1:%d' % port, self.registry.host)
        self.assertIsNone(self.registry.nginx)
        self.assertIsNone(self.registry.push_auth)
        self.assertEqual('oci://127.0.0.1:%d/a/b:v1' % port,
                         self.registry.oci_url('a/b', 'v1'))
        self.assertEqual('oci://127.0.0.1:%d/a/b@sha256:00' % port,
                         self.registry.oci_url('a/b', 'sha256:00'))
        resp = self.get(self.registry.url + '/v2/')
        self.assertEqual(200, resp.status_code)

    def test_blob_push_pull(self):
        digest = oci_push.push_blob(self.registry.url, REPO, DATA)
        self.assertEqual('sha256:' + hashlib.sha256(DATA).hexdigest(),
                         digest)
        url = '%s/v2/%s/blobs/%s' % (self.registry.url, REPO, digest)
        resp = self.get(url)
        self.assertEqual(200, resp.status_code)
        self.assertEqual(DATA, resp.content)
        self.assertEqual(digest, resp.headers['Docker-Content-Digest'])
        resp = self.get(url, headers={'Range': 'bytes=10-19'})
        self.assertEqual(206, resp.status_code)
        self.assertEqual(DATA[10:20], resp.content)
        with open(self.registry.blob_path(digest), 'rb') as f:
            self.assertEqual(DATA, f.read())

    def test_blob_file_push(self):
        path = os.path.join(self.tmp, 'blob')
        with open(path, 'wb') as f:
            f.write(DATA)
        digest, size = oci_push.push_blob_file(self.registry.url, REPO,
                                               path)
        self.assertEqual(oci_push.sha256_digest(DATA), digest)
        self.assertEqual(len(DATA), size)
        resp = self.get('%s/v2/%s/blobs/%s' % (self.registry.url, REPO,
                                               digest))
        self.assertEqual(DATA, resp.content)

    def test_corrupt_and_delete_blob(self):
        digest = oci_push.push_blob(self.registry.url, REPO, DATA)
        url = '%s/v2/%s/blobs/%s' % (self.registry.url, REPO, digest)
        bad = b'X' + DATA[1:]
        with open(self.registry.blob_path(digest), 'wb') as f:
            f.write(bad)
        # The registry serves what is stored: a digest mismatch.
        self.assertEqual(bad, self.get(url).content)
        oci_push.delete_blob(self.registry.url, REPO, digest)
        self.assertEqual(404, self.get(url).status_code)

    def test_disk_image_index(self):
        files = _files()
        pushed = oci_push.push_disk_image_fixture(
            self.registry, REPO, ['v1', 'latest'], files)
        self.assertEqual(['v1', 'latest'], pushed.tags)
        self.assertEqual(5, len(pushed.manifest_digests))
        url = self.registry.url
        resp = oci_push.get_manifest(url, REPO, 'v1', accept=oci_push.INDEX)
        self.assertEqual(200, resp.status_code)
        self.assertEqual(oci_push.INDEX, resp.headers['Content-Type'])
        self.assertEqual(pushed.index_bytes, resp.content)
        self.assertEqual(pushed.index_digest,
                         'sha256:' + hashlib.sha256(resp.content).hexdigest())
        self.assertEqual(pushed.index_digest,
                         resp.headers['Docker-Content-Digest'])
        self.assertEqual(pushed.index_size, len(resp.content))
        # Quirk: without the index type in Accept, 404 MANIFEST_UNKNOWN.
        resp = oci_push.get_manifest(url, REPO, 'latest',
                                     accept=oci_push.MANIFEST)
        self.assertEqual(404, resp.status_code)
        self.assertIn('MANIFEST_UNKNOWN', resp.text)
        # By digest too.
        resp = oci_push.get_manifest(url, REPO, pushed.index_digest)
        self.assertEqual(pushed.index_bytes, resp.content)

        index = json.loads(pushed.index_bytes)
        entries = [(m['platform']['architecture'], m['platform']['os'],
                    m['annotations']['disktype']) for m in index['manifests']]
        self.assertEqual([('amd64', 'linux', 'qcow2'),
                          ('amd64', 'linux', 'raw'),
                          ('amd64', 'linux', 'raw'),
                          ('arm64', 'linux', 'qcow2'),
                          ('arm64', 'linux', 'raw')], entries)

        zst = pushed.artifacts['amd64']['raw.zst']
        self.assertEqual(oci_push.ZSTD, zst.media_type)
        self.assertEqual('raw', zst.disktype)
        self.assertEqual('disk-amd64.raw.zst', zst.filename)
        resp = oci_push.get_manifest(url, REPO, zst.manifest_digest,
                                     accept=oci_push.MANIFEST)
        self.assertEqual(200, resp.status_code)
        self.assertEqual(zst.manifest_digest,
                         oci_push.sha256_digest(resp.content))
        manifest = resp.json()
        self.assertEqual(oci_push.DISK_ARTIFACT, manifest['artifactType'])
        self.assertEqual({'mediaType': oci_push.EMPTY, 'size': 2,
                          'digest': oci_push.EMPTY_DIGEST},
                         manifest['config'])
        layer, = manifest['layers']
        self.assertEqual(zst.blob_digest, layer['digest'])
        self.assertEqual(300, layer['size'])
        self.assertEqual('disk-amd64.raw.zst',
                         layer['annotations'][oci_push.TITLE])
        resp = self.get('%s/v2/%s/blobs/%s' % (url, REPO, zst.blob_digest))
        self.assertEqual(files['amd64']['raw.zst'], resp.content)
        resp = self.get('%s/v2/%s/blobs/%s' % (url, REPO,
                                               oci_push.EMPTY_DIGEST))
        self.assertEqual(b'{}', resp.content)
        self.assertEqual(len(pushed.blob_digests),
                         len(set(pushed.blob_digests)))

        resp = self.get('%s/v2/%s/tags/list' % (url, REPO))
        self.assertEqual(['latest', 'v1'], sorted(resp.json()['tags']))

    def test_oras_artifact(self):
        art = oci_push.push_artifact(self.registry, 'oras/disk', 'v2',
                                     DATA, 'disk.qcow2')
        resp = oci_push.get_manifest(self.registry.url, 'oras/disk', 'v2')
        self.assertEqual(200, resp.status_code)
        self.assertEqual(oci_push.MANIFEST, resp.headers['Content-Type'])
        self.assertEqual(art.manifest_digest,
                         oci_push.sha256_digest(resp.content))
        manifest = resp.json()
        self.assertEqual(oci_push.UNKNOWN_ARTIFACT,
                         manifest['artifactType'])
        self.assertEqual([{'mediaType': oci_push.LAYER_TAR,
                           'digest': art.blob_digest, 'size': len(DATA),
                           'annotations': {oci_push.TITLE: 'disk.qcow2'}}],
                         manifest['layers'])

    def test_low_level_builders(self):
        url = self.registry.url
        self.assertEqual(oci_push.EMPTY_DIGEST,
                         oci_push.push_empty_config(url, REPO))
        blob = oci_push.push_blob(url, REPO, DATA)
        manifest = oci_push.artifact_manifest(blob, len(DATA), 'd.raw',
                                              disktype='raw')
        self.assertEqual('raw', manifest['annotations']['disktype'])
        mdigest = oci_push.push_manifest(url, REPO, None, manifest,
                                         oci_push.MANIFEST)
        self.assertEqual(oci_push.manifest_digest(manifest), mdigest)
        idx = oci_push.index([(mdigest, oci_push.manifest_size(manifest),
                               'arm64', 'linux', {'disktype': 'raw'}),
                              (mdigest, oci_push.manifest_size(manifest),
                               None, None, None)])
        self.assertEqual({'architecture': 'arm64', 'os': 'linux'},
                         idx['manifests'][0]['platform'])
        self.assertNotIn('platform', idx['manifests'][1])
        raw = oci_push.encode_manifest(idx)
        digest = oci_push.push_manifest(url, REPO, 'tag', raw,
                                        oci_push.INDEX)
        resp = oci_push.get_manifest(url, REPO, 'tag')
        self.assertEqual(raw, resp.content)
        self.assertEqual(oci_push.sha256_digest(raw), digest)
        oci_push.delete_manifest(url, REPO, digest)
        self.assertEqual(404, oci_push.get_manifest(url, REPO,
                                                    'tag').status_code)

    def test_stop_by_pid(self):
        server = registry.RegistryServer(redirect_to_nginx=True).start()
        pids = [server.pid, server.nginx.pid]
        workdir = server.workdir
        server.stop()
        for pid in pids:
            self.assertRaises(ProcessLookupError, os.kill, pid, 0)
        self.assertFalse(os.path.exists(workdir))
        server.stop()  # again: harmless


class TestHtpasswdRegistry(RegistryTestCase):

    def test_basic_auth(self):
        reg = self.useFixture(registry.RegistryFixture(
            htpasswd=('user', 'secret')))
        resp = self.get(reg.url + '/v2/')
        self.assertEqual(401, resp.status_code)
        self.assertEqual('Basic realm="test-realm"',
                         resp.headers['WWW-Authenticate'])
        resp = self.get(reg.url + '/v2/', auth=('user', 'wrong'))
        self.assertEqual(401, resp.status_code)
        resp = self.get(reg.url + '/v2/', auth=('user', 'secret'))
        self.assertEqual(200, resp.status_code)
        with open(reg.server.htpasswd_path) as f:
            self.assertIn('user:$2y$', f.read())  # bcrypt

        self.assertEqual(('user', 'secret'), reg.push_auth)
        self.assertRaises(oci_push.PushError, oci_push.push_blob, reg.url,
                          REPO, DATA)
        digest = oci_push.push_blob(reg.url, REPO, DATA,
                                    auth=('user', 'secret'))
        url = '%s/v2/%s/blobs/%s' % (reg.url, REPO, digest)
        self.assertEqual(401, self.get(url).status_code)
        self.assertEqual(DATA, self.get(url, auth=('user', 'secret')).content)
        # RegistryAuth answers the Basic challenge.
        auth = oci_push.RegistryAuth('user', 'secret')
        self.assertEqual(DATA, self.get(url, auth=auth).content)
        pushed = oci_push.push_disk_image_fixture(reg, REPO, 'v1', _files())
        resp = oci_push.get_manifest(reg.url, REPO, 'v1',
                                     auth=('user', 'secret'))
        self.assertEqual(pushed.index_bytes, resp.content)


class TestTlsRegistry(RegistryTestCase):

    def test_tls(self):
        ca = tls.make_test_ca(self.tmp)
        reg = self.useFixture(registry.RegistryFixture(tls=ca))
        self.assertEqual('https://127.0.0.1:%d' % reg.port, reg.url)
        self.assertEqual(ca.ca_cert, reg.verify)
        self.assertRaises(requests.exceptions.SSLError, self.get,
                          reg.url + '/v2/', verify=True)
        self.assertEqual(200, self.get(reg.url + '/v2/',
                                       verify=ca.ca_cert).status_code)
        pushed = oci_push.push_disk_image_fixture(reg, REPO, 'v1', _files())
        resp = oci_push.get_manifest(reg.url, REPO, 'v1', verify=ca.ca_cert)
        self.assertEqual(pushed.index_bytes, resp.content)


class TestTokenRegistry(RegistryTestCase):

    def setUp(self):
        super(TestTokenRegistry, self).setUp()
        self.tokens = self.useFixture(token_server.TokenServerFixture(
            users={'reader': 'pass-word'}, anonymous=True))
        self.registry = self.useFixture(registry.RegistryFixture(
            token_auth=self.tokens))
        self.blob = oci_push.push_blob(self.registry.url, REPO, DATA,
                                       auth=self.registry.push_auth)
        self.blob_url = '%s/v2/%s/blobs/%s' % (self.registry.url, REPO,
                                               self.blob)

    def token(self, scope='repository:%s:pull' % REPO, **kwargs):
        resp = self.get(self.tokens.realm, params={
            'service': 'test-registry', 'scope': scope}, **kwargs)
        self.assertEqual(200, resp.status_code, resp.text)
        return resp.json()

    def test_challenge(self):
        resp = self.get(self.registry.url + '/v2/')
        self.assertEqual(401, resp.status_code)
        scheme, params = oci_push.parse_www_authenticate(
            resp.headers['WWW-Authenticate'])
        self.assertEqual('bearer', scheme)
        self.assertEqual({'realm': self.tokens.realm,
                          'service': 'test-registry'}, params)
        resp = self.get(self.blob_url)
        _, params = oci_push.parse_www_authenticate(
            resp.headers['WWW-Authenticate'])
        self.assertEqual('repository:%s:pull' % REPO, params['scope'])
        # Pushing fixtures is not recorded by the token server.
        self.assertEqual(0, self.tokens.request_count)

    def test_pull_with_token(self):
        body = self.token(auth=('reader', 'pass-word'))
        self.assertEqual({'token', 'access_token', 'expires_in',
                          'issued_at'}, set(body))
        self.assertEqual(body['token'], body['access_token'])
        self.assertEqual(300, body['expires_in'])
        token = body['token']
        header = jwt.get_unverified_header(token)
        self.assertEqual('RS256', header['alg'])
        self.assertEqual([base64.b64encode(self.tokens.cert_der).decode()],
                         header['x5c'])
        claims = jwt.decode(token, options={'verify_signature': False})
        self.assertEqual('test-issuer', claims['iss'])
        self.assertEqual('test-registry', claims['aud'])
        self.assertEqual('reader', claims['sub'])
        self.assertEqual(300, claims['exp'] - claims['iat'])
        self.assertEqual([{'type': 'repository', 'name': REPO,
                           'actions': ['pull']}], claims['access'])
        for key in ('nbf', 'jti'):
            self.assertIn(key, claims)

        resp = self.get(self.blob_url,
                        headers={'Authorization': 'Bearer ' + token})
        self.assertEqual(200, resp.status_code)
        self.assertEqual(DATA, resp.content)

        req, = self.tokens.requests
        self.assertTrue(req.basic_auth)
        self.assertEqual('reader', req.user)
        self.assertEqual(200, req.status)
        self.assertEqual(('repository:%s:pull' % REPO,), req.scopes)
        self.assertEqual(claims['jti'], req.jti)
        self.assertNotIn('pass-word', repr(self.tokens.requests))

    def test_anonymous_and_bad_credentials(self):
        token = self.token()['token']
        claims = jwt.decode(token, options={'verify_signature': False})
        self.assertEqual('', claims['sub'])
        resp = self.get(self.blob_url,
                        headers={'Authorization': 'Bearer ' + token})
        self.assertEqual(200, resp.status_code)
        resp = self.get(self.tokens.realm, params={
            'service': 'test-registry',
            'scope': 'repository:%s:pull' % REPO}, auth=('reader', 'bad'))
        self.assertEqual(401, resp.status_code)
        resp = self.get(self.tokens.realm, params={
            'service': 'other', 'scope': 'repository:%s:pull' % REPO})
        self.assertEqual(400, resp.status_code)
        self.tokens.server.anonymous = False
        resp = self.get(self.tokens.realm, params={
            'service': 'test-registry',
            'scope': 'repository:%s:pull' % REPO})
        self.assertEqual(401, resp.status_code)
        self.assertEqual([False, True, False, False],
                         [r.basic_auth for r in self.tokens.requests])
        self.assertEqual([200, 401, 400, 401],
                         [r.status for r in self.tokens.requests])
        self.assertNotIn('bad', [r.user for r in self.tokens.requests])
        self.tokens.clear_requests()
        self.assertEqual(0, self.tokens.request_count)

    def _assert_invalid(self, resp, error='invalid_token'):
        self.assertEqual(401, resp.status_code)
        scheme, params = oci_push.parse_www_authenticate(
            resp.headers['WWW-Authenticate'])
        self.assertEqual('bearer', scheme)
        self.assertEqual(error, params['error'])

    def test_bad_token(self):
        self._assert_invalid(self.get(
            self.blob_url, headers={'Authorization': 'Bearer abc.def.ghi'}))
        # Signed by another key.
        other = token_server.TokenServer()
        self.addCleanup(other.stop)
        token = other.make_token(['repository:%s:pull' % REPO])
        self._assert_invalid(self.get(
            self.blob_url, headers={'Authorization': 'Bearer ' + token}))

    def test_expired_token(self):
        self.tokens.expire_next(1)
        body = self.token()
        self.assertEqual(300, body['expires_in'])
        self._assert_invalid(self.get(
            self.blob_url,
            headers={'Authorization': 'Bearer ' + body['token']}))
        token = self.token()['token']  # the next one is good
        resp = self.get(self.blob_url,
                        headers={'Authorization': 'Bearer ' + token})
        self.assertEqual(200, resp.status_code)
        self.assertEqual(2, self.tokens.tokens_issued)

    def test_short_lived_tokens(self):
        self.tokens.server.expires_in = 2
        body = self.token()
        self.assertEqual(2, body['expires_in'])
        claims = jwt.decode(body['token'],
                            options={'verify_signature': False})
        self.assertEqual(2, claims['exp'] - claims['iat'])

    def test_insufficient_scope(self):
        token = self.token(scope='repository:other/repo:pull')['token']
        self._assert_invalid(self.get(
            self.blob_url, headers={'Authorization': 'Bearer ' + token}),
            'insufficient_scope')
        self.tokens.server.repositories = {'other/repo'}
        token = self.token()['token']
        claims = jwt.decode(token, options={'verify_signature': False})
        self.assertEqual([], claims['access'][0]['actions'])
        self._assert_invalid(self.get(
            self.blob_url, headers={'Authorization': 'Bearer ' + token}),
            'insufficient_scope')

    def test_registry_auth_through_realm(self):
        auth = oci_push.RegistryAuth('reader', 'pass-word')
        resp = self.get(self.blob_url, auth=auth)
        self.assertEqual(200, resp.status_code)
        self.assertEqual(DATA, resp.content)
        req, = self.tokens.requests
        self.assertEqual('reader', req.user)
        # Pushing over HTTP needs the push action.
        self.assertRaises(oci_push.PushError, oci_push.push_blob,
                          self.registry.url, 'new/repo', DATA, auth=auth)
        self.tokens.server.actions = ('pull', 'push')
        auth = oci_push.RegistryAuth('reader', 'pass-word')
        oci_push.push_blob(self.registry.url, 'new/repo', b'x', auth=auth)

    def test_index(self):
        pushed = oci_push.push_disk_image_fixture(self.registry, REPO, 'v1',
                                                  _files())
        token = self.token()['token']
        resp = oci_push.get_manifest(
            self.registry.url, REPO, 'v1', accept=oci_push.INDEX,
            auth=oci_push.RegistryAuth(token_factory=lambda s, sc: token))
        self.assertEqual(200, resp.status_code)
        self.assertEqual(pushed.index_digest,
                         oci_push.sha256_digest(resp.content))


class TestTokenServerTls(RegistryTestCase):

    def test_https_token_server(self):
        ca = tls.make_test_ca(self.tmp)
        tokens = self.useFixture(token_server.TokenServerFixture(tls=ca))
        self.assertTrue(tokens.realm.startswith('https://127.0.0.1:'))
        reg = self.useFixture(registry.RegistryFixture(token_auth=tokens,
                                                       tls=ca))
        digest = oci_push.push_blob(reg.url, REPO, DATA,
                                    auth=reg.push_auth, verify=ca.ca_cert)
        auth = oci_push.RegistryAuth(verify=ca.ca_cert)
        resp = self.get('%s/v2/%s/blobs/%s' % (reg.url, REPO, digest),
                        auth=auth, verify=ca.ca_cert)
        self.assertEqual(DATA, resp.content)
        self.assertFalse(tokens.requests[0].basic_auth)


class TestRedirectRegistry(RegistryTestCase):

    def _check_redirect(self, reg, auth=None, verify=True):
        digest = oci_push.push_blob(reg.url, REPO, DATA, auth=reg.push_auth,
                                    verify=verify)
        url = '%s/v2/%s/blobs/%s' % (reg.url, REPO, digest)
        for method in ('GET', 'HEAD'):
            resp = requests.request(method, url, auth=auth, verify=verify,
                                    allow_redirects=False, timeout=10)
            self.assertEqual(307, resp.status_code)
            self.assertEqual(reg.redirect_url(digest),
                             resp.headers['Location'])
        location = resp.headers['Location']
        self.assertTrue(location.startswith(
            '%s://%s:%d/' % (reg.nginx.scheme, reg.server.redirect_host,
                             reg.nginx.port)))
        resp = self.get(url, auth=auth, verify=verify)
        self.assertEqual(200, resp.status_code)
        self.assertEqual(DATA, resp.content)
        self.assertEqual([307], [r.status_code for r in resp.history])
        log = reg.nginx.requests_log(count=1)
        self.assertEqual('GET', log[-1]['method'])
        self.assertEqual(len(DATA), log[-1]['body_bytes_sent'])
        return log[-1]

    def test_redirect(self):
        reg = self.useFixture(registry.RegistryFixture(
            redirect_to_nginx=True))
        self.assertEqual(reg.data_dir, reg.nginx.root_dir)
        entry = self._check_redirect(reg)
        self.assertFalse(entry['authorization'])
        # Manifests are not redirected.
        pushed = oci_push.push_disk_image_fixture(reg, REPO, 'v1', _files())
        resp = oci_push.get_manifest(reg.url, REPO, 'v1')
        self.assertEqual(200, resp.status_code)
        self.assertEqual(pushed.index_bytes, resp.content)

    def test_redirect_tls_other_host(self):
        ca = tls.make_test_ca(self.tmp)
        reg = self.useFixture(registry.RegistryFixture(
            redirect_to_nginx=True, tls=ca, redirect_host='localhost',
            htpasswd=('user', 'secret')))
        self.assertEqual('https', reg.nginx.scheme)
        entry = self._check_redirect(reg, auth=('user', 'secret'),
                                     verify=ca.ca_cert)
        # requests drops the credentials on the way to another host.
        self.assertFalse(entry['authorization'])
