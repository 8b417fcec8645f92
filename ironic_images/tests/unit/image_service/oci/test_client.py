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

"""OciClient protocol edge cases against requests-mock.

References, manifests (Accept, digests, malformed answers), tags and their
pagination, error statuses, retries, mirrors, the plain-HTTP fallback and
blobs (digests, sizes, redirects). The auth dance is in test_oci_auth.
"""

import hashlib
import io
import json

import fixtures
import requests
import requests_mock.contrib.fixture

from ironic_images import exception
from ironic_images.image_service.oci import client as oci_client
from ironic_images.image_service.oci import reference as oci_reference
from ironic_images.tests import base
from ironic_images.transfer import bodies

HOST = 'registry.example.com'
BASE = 'https://' + HOST
REPO = 'os/disk'
TAG_HREF = 'oci://%s/%s:v1' % (HOST, REPO)
TAGS_URL = '%s/v2/%s/tags/list' % (BASE, REPO)
DATA = b'disk image bytes ' * 1000
BLOB_DIGEST = 'sha256:' + hashlib.sha256(DATA).hexdigest()
MANIFEST = json.dumps({
    'schemaVersion': 2, 'mediaType': oci_client.MANIFEST_TYPE,
    'config': {'mediaType': 'application/vnd.oci.empty.v1+json',
               'digest': 'sha256:' + hashlib.sha256(b'{}').hexdigest(),
               'size': 2},
    'layers': [{'mediaType': 'application/vnd.oci.image.layer.v1.tar',
                'digest': BLOB_DIGEST, 'size': len(DATA),
                'annotations': {'org.opencontainers.image.title':
                                'disk.raw'}}]}).encode()
MANIFEST_DIGEST = 'sha256:' + hashlib.sha256(MANIFEST).hexdigest()
DIGEST_HREF = 'oci://%s/%s@%s' % (HOST, REPO, MANIFEST_DIGEST)
HEX = 'a' * 64


def manifest_url(ref, base=BASE):
    return '%s/v2/%s/manifests/%s' % (base, REPO, ref)


def blob_url(digest=BLOB_DIGEST, base=BASE):
    return '%s/v2/%s/blobs/%s' % (base, REPO, digest)


def digest_of(body, algorithm='sha256'):
    return '%s:%s' % (algorithm, hashlib.new(algorithm, body).hexdigest())


class TestParseReference(base.TestCase):

    def test_forms(self):
        parse = oci_reference.parse_reference
        cases = [
            ('oci://reg/repo', ('reg', 'repo', 'latest', None)),
            ('oci://reg/a/b/c:v1.2_3-x', ('reg', 'a/b/c', 'v1.2_3-x', None)),
            ('oci://Reg.Example:5000/a/b', ('reg.example:5000', 'a/b',
                                            'latest', None)),
            ('oci://reg:5000/a/b:v1', ('reg:5000', 'a/b', 'v1', None)),
            ('  OCI://reg/a@sha256:%s ' % HEX.upper(),
             ('reg', 'a', None, 'sha256:' + HEX)),
            ('oci://reg/a@sha512:' + 'b' * 128,
             ('reg', 'a', None, 'sha512:' + 'b' * 128)),
            ('oci://[::1]:5000/a_b/c__d/e-f', ('[::1]:5000', 'a_b/c__d/e-f',
                                               'latest', None)),
            ('oci://reg/a:' + 'T' * 128, ('reg', 'a', 'T' * 128, None)),
        ]
        for href, expected in cases:
            self.assertEqual(expected, tuple(parse(href)), href)

    def test_reference_and_url(self):
        ref = oci_reference.parse_reference('oci://reg:5000/a/b:v1')
        self.assertEqual('v1', ref.reference)
        self.assertEqual('oci://reg:5000/a/b:v1', ref.url())
        self.assertEqual('oci://reg:5000/a/b@sha256:' + HEX,
                         ref.url('sha256:' + HEX))
        ref = oci_reference.parse_reference('oci://reg/a@sha256:' + HEX)
        self.assertEqual('sha256:' + HEX, ref.reference)
        self.assertEqual('oci://reg/a@sha256:' + HEX, ref.url())

    def test_invalid(self):
        for href in ('https://reg/a', 'reg/a', 'oci:///a', 'oci://reg',
                     'oci://reg/', 'oci://user:pw@reg/a', 'oci://reg/A',
                     'oci://reg/a/', 'oci://reg/a//b', 'oci://reg/-a',
                     'oci://reg/a:-v1', 'oci://reg/a:' + 'v' * 129,
                     'oci://reg/a:v1?x=1', 'oci://reg/a#frag',
                     'oci://reg/a@sha256:abc', 'oci://reg/a@md5:' + 'a' * 32,
                     'oci://reg/a@sha256:' + 'g' * 64,
                     'oci://reg/a@sha512:' + HEX, 'oci://reg/a@', None, 42):
            error = self.assertRaises(exception.ImageRefValidationFailed,
                                      oci_reference.parse_reference, href)
            self.assertIn('Validation of image href', str(error))


class TestSingleLayer(base.TestCase):

    def test_one_layer(self):
        layer = oci_client.single_layer(json.loads(MANIFEST), 'h')
        self.assertEqual(BLOB_DIGEST, layer['digest'])

    def test_index_is_not_specific(self):
        for manifest in ({'mediaType': oci_client.INDEX_TYPE},
                         {'mediaType': oci_client.DOCKER_LIST_TYPE},
                         {'manifests': []}):
            self.assertRaises(exception.OciImageNotSpecific,
                              oci_client.single_layer, manifest, 'h')

    def test_not_one_valid_layer(self):
        good = {'digest': BLOB_DIGEST}
        for layers in (None, [], [good, good], 'x', {'a': good}, [None],
                       ['sha256:' + HEX], [{}], [{'digest': 'sha256:1'}],
                       [{'digest': 5}]):
            self.assertRaises(exception.ImageRefValidationFailed,
                              oci_client.single_layer,
                              {'layers': layers}, 'h')


class ClientTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.mocker = self.useFixture(
            requests_mock.contrib.fixture.Fixture())
        # tenacity and resumable both call time.sleep.
        self.sleep = self.useFixture(fixtures.MockPatch('time.sleep')).mock
        self.config(retries=2, group='download')
        self.client = oci_client.OciClient()

    def add_manifest(self, body=MANIFEST, ref=MANIFEST_DIGEST, base=BASE,
                     content_type=oci_client.MANIFEST_TYPE, **kwargs):
        return self.mocker.get(manifest_url(ref, base), content=body,
                               headers={'Content-Type': content_type},
                               **kwargs)

    def add_blob(self, data=DATA, digest=BLOB_DIGEST, base=BASE, **kwargs):
        kwargs.setdefault('headers', {'Content-Length': str(len(data))})
        return self.mocker.get(blob_url(digest, base), content=data,
                               **kwargs)

    def urls(self):
        return [r.url for r in self.mocker.request_history]


class TestManifests(ClientTestCase):

    def test_accept_lists_every_manifest_type(self):
        self.add_manifest(ref='v1')
        self.assertEqual(json.loads(MANIFEST),
                         self.client.get_manifest(TAG_HREF))
        accept = [t.strip() for t in
                  self.mocker.last_request.headers['Accept'].split(',')]
        self.assertEqual(sorted([
            'application/vnd.oci.image.index.v1+json',
            'application/vnd.oci.image.manifest.v1+json',
            'application/vnd.docker.distribution.manifest.list.v2+json',
            'application/vnd.docker.distribution.manifest.v2+json']),
            sorted(accept))
        self.assertEqual('identity',
                         self.mocker.last_request.headers['Accept-Encoding'])

    def test_digest_of_the_bytes_as_received(self):
        # Not canonical JSON: the digest is of these exact bytes.
        body = (b'{ "schemaVersion":2, "config": {"digest": "%s", "size": 2},'
                b'\n"layers" :[ {"digest": "%s" ,"size":1} ] }\n' % (
                    digest_of(b'{}').encode(), BLOB_DIGEST.encode()))
        self.add_manifest(body=body, ref=digest_of(body))
        href = 'oci://%s/%s@%s' % (HOST, REPO, digest_of(body))
        manifest, digest = self.client.get_manifest_and_digest(href)
        self.assertEqual(digest_of(body), digest)
        self.assertEqual([{'digest': BLOB_DIGEST, 'size': 1}],
                         manifest['layers'])
        self.add_manifest(body=body, ref='v1')
        self.assertEqual(digest_of(body),
                         self.client.get_manifest_and_digest(TAG_HREF)[1])

    def test_sha512_digest(self):
        digest = digest_of(MANIFEST, 'sha512')
        self.add_manifest(ref=digest)
        href = 'oci://%s/%s@%s' % (HOST, REPO, digest)
        self.assertEqual((json.loads(MANIFEST), digest),
                         self.client.get_manifest_and_digest(href))

    def test_digest_mismatch(self):
        tampered = MANIFEST.replace(b'disk.raw', b'evil.raw')
        self.add_manifest(body=tampered)
        error = self.assertRaises(exception.ImageChecksumError,
                                  self.client.get_manifest, DIGEST_HREF)
        self.assertIn(MANIFEST_DIGEST.partition(':')[2], str(error))

    def test_digest_argument_overrides_the_reference(self):
        self.add_manifest()
        self.assertEqual(json.loads(MANIFEST), self.client.get_manifest(
            TAG_HREF, digest=MANIFEST_DIGEST.upper().replace('SHA', 'sha')))
        self.assertEqual([manifest_url(MANIFEST_DIGEST)], self.urls())

    def test_media_type_from_content_type(self):
        body = json.dumps({'schemaVersion': 2, 'manifests': []}).encode()
        self.add_manifest(body=body, ref='v1', content_type=(
            oci_client.DOCKER_LIST_TYPE + '; charset=utf-8'))
        index = self.client.get_artifact_index(TAG_HREF)
        self.assertEqual(oci_client.DOCKER_LIST_TYPE, index['mediaType'])

    def test_artifact_index_of_a_manifest(self):
        self.add_manifest(ref='v1')
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.client.get_artifact_index, TAG_HREF)

    def test_malformed(self):
        for body in (b'', b'not json', b'{"a": ', b'[]', b'"text"', b'null',
                     b'\xff\xfe', b'42'):
            self.add_manifest(body=body, ref='v1')
            error = self.assertRaises(exception.ImageRefValidationFailed,
                                      self.client.get_manifest, TAG_HREF)
            self.assertIn('manifest', str(error))

    def test_too_large(self):
        body = b'{"pad": "%s"}' % (b'x' * bodies.MANIFEST)
        self.add_manifest(body=body, ref='v1')
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.client.get_manifest, TAG_HREF)

    def test_download_blob_from_manifest(self):
        self.add_manifest()
        self.add_blob()
        out = io.BytesIO()
        self.assertEqual(BLOB_DIGEST, self.client.download_blob_from_manifest(
            DIGEST_HREF, out))
        self.assertEqual(DATA, out.getvalue())


class TestTags(ClientTestCase):

    def test_link_pagination(self):
        self.mocker.get(TAGS_URL, [
            {'json': {'name': REPO, 'tags': ['a', 'b']},
             'headers': {'Link': '</v2/os/disk/tags/list?n=2&last=b>; '
                                 'rel="next"'}},
            {'json': {'name': REPO, 'tags': ['c', 'd']},
             'headers': {'Link': '<%s?last=d&n=2>; rel="next"' % TAGS_URL}},
            {'json': {'name': REPO, 'tags': ['e']}}])
        self.assertEqual(['a', 'b', 'c', 'd', 'e'],
                         self.client.get_tags(TAG_HREF))
        self.assertEqual([TAGS_URL, TAGS_URL + '?n=2&last=b',
                          TAGS_URL + '?last=d&n=2'], self.urls())

    def test_no_tags(self):
        for body in ({'name': REPO, 'tags': None}, {'name': REPO}):
            self.mocker.get(TAGS_URL, json=body)
            self.assertEqual([], self.client.get_tags(TAG_HREF))

    def test_malformed(self):
        for body in (b'nope', b'{"tags": "v1"}', b'{"tags": {"a": 1}}'):
            self.mocker.get(TAGS_URL, content=body)
            self.assertRaises(exception.ImageRefValidationFailed,
                              self.client.get_tags, TAG_HREF)

    def test_not_an_object(self):
        # A JSON array or string is no tag list, not an empty one.
        for body in (b'["v1"]', b'"v1"'):
            self.mocker.get(TAGS_URL, content=body)
            self.assertRaises(exception.ImageRefValidationFailed,
                              self.client.get_tags, TAG_HREF)

    def test_missing_tag_lists_tags(self):
        self.mocker.get(manifest_url('v1'), status_code=404)
        self.mocker.get(TAGS_URL, json={'tags': ['v2', 'latest']})
        error = self.assertRaises(exception.OciImageTagNotFound,
                                  self.client.get_manifest, TAG_HREF)
        self.assertEqual('v2, latest', error.kwargs['tags'])

    def test_missing_tag_when_tags_cannot_be_listed(self):
        self.mocker.get(manifest_url('v1'), status_code=404)
        for answer in ({'status_code': 404}, {'status_code': 401},
                       {'text': 'garbage'}):
            self.mocker.get(TAGS_URL, **answer)
            error = self.assertRaises(exception.OciImageTagNotFound,
                                      self.client.get_manifest, TAG_HREF)
            self.assertEqual('none', error.kwargs['tags'])

    def test_missing_tag_with_odd_tag_list(self):
        self.mocker.get(manifest_url('v1'), status_code=404)
        self.mocker.get(TAGS_URL, json={'tags': ['v2', 3, None]})
        self.assertRaises(exception.OciImageTagNotFound,
                          self.client.get_manifest, TAG_HREF)


class TestStatuses(ClientTestCase):

    def test_missing_digest_is_image_not_found(self):
        self.mocker.get(manifest_url(MANIFEST_DIGEST), status_code=404)
        error = self.assertRaises(exception.ImageNotFound,
                                  self.client.get_manifest, DIGEST_HREF)
        self.assertNotIsInstance(error, exception.OciImageTagNotFound)
        self.assertIn('HTTP 404 for the manifest', str(error))
        self.assertNotIn(TAGS_URL, self.urls())

    def test_registry_error_code_in_message(self):
        errors = {'errors': [{'code': 'NAME_UNKNOWN',
                              'message': 'repository name not known'}]}
        self.mocker.get(TAGS_URL, status_code=404, json=errors)
        error = self.assertRaises(exception.ImageNotFound,
                                  self.client.get_tags, TAG_HREF)
        self.assertIn('NAME_UNKNOWN repository name not known', str(error))
        # Manifests and blobs are streamed: the body must still be read.
        self.mocker.get(manifest_url(MANIFEST_DIGEST), status_code=404,
                        json=errors)
        self.mocker.get(blob_url(), status_code=404, json=errors)
        for call in (lambda: self.client.get_manifest(DIGEST_HREF),
                     lambda: self.client.download_blob(
                         DIGEST_HREF, BLOB_DIGEST, io.BytesIO())):
            error = self.assertRaises(exception.ImageNotFound, call)
            self.assertIn('NAME_UNKNOWN', str(error))

    def test_forbidden_is_image_not_found(self):
        self.mocker.get(manifest_url(MANIFEST_DIGEST), status_code=403,
                        text='<html>denied</html>')
        self.assertRaises(exception.ImageNotFound,
                          self.client.get_manifest, DIGEST_HREF)

    def test_429_retry_after_then_success(self):
        self.add_manifest()
        self.mocker.get(manifest_url(MANIFEST_DIGEST), [
            {'status_code': 429, 'headers': {'Retry-After': '7'}},
            {'content': MANIFEST}])
        self.assertEqual(json.loads(MANIFEST),
                         self.client.get_manifest(DIGEST_HREF))
        self.sleep.assert_called_once_with(7.0)

    def test_persistent_429(self):
        self.mocker.get(manifest_url(MANIFEST_DIGEST), status_code=429,
                        headers={'Retry-After': '1'})
        self.assertRaises(exception.ImageHostRateLimitFailure,
                          self.client.get_manifest, DIGEST_HREF)
        self.assertEqual(3, self.mocker.call_count)

    def test_5xx_then_success(self):
        self.mocker.get(manifest_url(MANIFEST_DIGEST), [
            {'status_code': 502}, {'status_code': 503},
            {'content': MANIFEST}])
        self.assertEqual(json.loads(MANIFEST),
                         self.client.get_manifest(DIGEST_HREF))

    def test_persistent_5xx_is_temporary_failure(self):
        for status in (500, 502, 503, 504):
            before = self.mocker.call_count
            self.mocker.get(manifest_url(MANIFEST_DIGEST), status_code=status)
            error = self.assertRaises(exception.TemporaryFailure,
                                      self.client.get_manifest, DIGEST_HREF)
            self.assertNotIsInstance(error,
                                     exception.ImageHostRateLimitFailure)
            self.assertEqual(3, self.mocker.call_count - before)

    def test_other_status(self):
        self.mocker.get(manifest_url(MANIFEST_DIGEST), status_code=400)
        self.assertRaises(exception.ImageDownloadFailed,
                          self.client.get_manifest, DIGEST_HREF)

    def test_connection_error(self):
        self.mocker.get(manifest_url(MANIFEST_DIGEST),
                        exc=requests.ConnectionError('refused'))
        self.assertRaises(exception.TemporaryFailure,
                          self.client.get_manifest, DIGEST_HREF)
        self.assertEqual(3, self.mocker.call_count)


class TestMirrors(ClientTestCase):

    mirror = 'https://mirror.example.com:5000'

    def setUp(self):
        super().setUp()
        self.config(registry_mirrors=[
            'other.example.com=wrong.example.com',
            '%s=mirror.example.com:5000' % HOST.upper(),
            '%s = second.example.com' % HOST, 'malformed'], group='oci')

    def test_mirror_first(self):
        self.add_manifest(base=self.mirror)
        self.add_blob(base=self.mirror)
        out = io.BytesIO()
        self.client.download_blob_from_manifest(DIGEST_HREF, out)
        self.assertEqual(DATA, out.getvalue())
        self.assertEqual([manifest_url(MANIFEST_DIGEST, self.mirror),
                          blob_url(base=self.mirror)], self.urls())

    def test_mirrors_in_order_then_origin(self):
        self.mocker.get(manifest_url(MANIFEST_DIGEST, self.mirror),
                        status_code=404)
        self.mocker.get(manifest_url(MANIFEST_DIGEST,
                                     'https://second.example.com'),
                        exc=requests.ConnectionError('down'))
        self.add_manifest()
        self.assertEqual(json.loads(MANIFEST),
                         self.client.get_manifest(DIGEST_HREF))
        # A mirror that cannot be reached is asked once, not retried.
        self.assertEqual(
            [manifest_url(MANIFEST_DIGEST, self.mirror),
             manifest_url(MANIFEST_DIGEST, 'https://second.example.com'),
             manifest_url(MANIFEST_DIGEST)], self.urls())

    def test_dead_mirrors_are_skipped_at_once(self):
        for error in (requests.ConnectionError('Name or service not known'),
                      requests.ConnectTimeout('connect timeout'),
                      requests.ReadTimeout('read timeout')):
            start = len(self.urls())
            self.mocker.get(manifest_url(MANIFEST_DIGEST, self.mirror),
                            exc=error)
            self.mocker.get(manifest_url(MANIFEST_DIGEST,
                                         'https://second.example.com'),
                            exc=error)
            self.mocker.get(manifest_url(MANIFEST_DIGEST),
                            exc=requests.ConnectionError('refused'))
            self.assertRaises(exception.TemporaryFailure,
                              self.client.get_manifest, DIGEST_HREF)
            # The origin, last, is retried ([download]retries=2).
            self.assertEqual(
                [manifest_url(MANIFEST_DIGEST, self.mirror),
                 manifest_url(MANIFEST_DIGEST, 'https://second.example.com')]
                + [manifest_url(MANIFEST_DIGEST)] * 3, self.urls()[start:])

    def test_origin_error_is_raised(self):
        self.mocker.get(manifest_url(MANIFEST_DIGEST, self.mirror),
                        status_code=503)
        self.mocker.get(manifest_url(MANIFEST_DIGEST,
                                     'https://second.example.com'),
                        status_code=401)
        self.mocker.get(manifest_url(MANIFEST_DIGEST), status_code=404)
        self.assertRaises(exception.ImageNotFound,
                          self.client.get_manifest, DIGEST_HREF)
        self.assertEqual(manifest_url(MANIFEST_DIGEST), self.urls()[-1])

    def mirror_redirects(self, location, target, mirror_auth=None):
        """The Authorization a mirror's blob redirect is followed with.

        The origin has a token (a manifest came from it), the mirror
        ``mirror_auth``.
        """
        authorization = self.client.registry._authorization
        authorization[(HOST, REPO)] = 'Bearer origin'
        if mirror_auth:
            authorization[('mirror.example.com:5000', REPO)] = mirror_auth
        self.mocker.get(blob_url(base=self.mirror), status_code=307,
                        headers={'Location': location})
        self.mocker.get(target, content=DATA,
                        headers={'Content-Length': str(len(DATA))})
        out = io.BytesIO()
        self.client.download_blob(DIGEST_HREF, BLOB_DIGEST, out)
        self.assertEqual(DATA, out.getvalue())
        self.assertEqual(target, self.mocker.last_request.url)
        return self.mocker.last_request.headers.get('Authorization')

    def test_mirror_redirect_never_gets_the_origin_authorization(self):
        # The origin's token is for the origin: the mirror is another host.
        self.assertIsNone(self.mirror_redirects(
            '/storage/b', self.mirror + '/storage/b'))

    def test_mirror_redirect_on_its_host_gets_its_authorization(self):
        self.assertEqual('Bearer mirror', self.mirror_redirects(
            '/storage/b', self.mirror + '/storage/b', 'Bearer mirror'))

    def test_secure_cdn_names_the_redirect_target(self):
        # [oci]secure_cdn_registries names where a redirect may carry the
        # header, not who redirects: listing the registry or its mirror
        # sends nothing to the CDN.
        for listed in ([HOST], ['mirror.example.com']):
            self.config(secure_cdn_registries=listed, group='oci')
            self.assertIsNone(self.mirror_redirects(
                'https://cdn.example.com/b', 'https://cdn.example.com/b',
                'Bearer mirror'))
        # The mirror's own token goes to the CDN when the CDN is listed;
        # the origin's never does.
        self.config(secure_cdn_registries=['cdn.example.com'], group='oci')
        self.assertEqual('Bearer mirror', self.mirror_redirects(
            'https://cdn.example.com/b', 'https://cdn.example.com/b',
            'Bearer mirror'))


class TestTransport(ClientTestCase):

    def test_https_only_by_default(self):
        self.mocker.get(manifest_url(MANIFEST_DIGEST),
                        exc=requests.ConnectionError('refused'))
        self.assertRaises(exception.TemporaryFailure,
                          self.client.get_manifest, DIGEST_HREF)
        self.assertTrue(all(u.startswith('https://') for u in self.urls()))

    def test_fallback_to_http_is_remembered(self):
        self.config(permit_fallback_to_http_transport=True, group='oci')
        self.mocker.get(manifest_url(MANIFEST_DIGEST),
                        exc=requests.ConnectionError('refused'))
        http_base = 'http://' + HOST
        self.add_manifest(base=http_base)
        self.add_blob(base=http_base)
        self.client.download_blob_from_manifest(DIGEST_HREF, io.BytesIO())
        self.client.get_manifest(DIGEST_HREF)
        self.assertEqual([manifest_url(MANIFEST_DIGEST),
                          manifest_url(MANIFEST_DIGEST, http_base),
                          blob_url(base=http_base),
                          manifest_url(MANIFEST_DIGEST, http_base)],
                         self.urls())
        self.assertEqual(blob_url(base=http_base),
                         self.client.get_blob_url(TAG_HREF, BLOB_DIGEST))

    def test_no_fallback_on_a_certificate_failure(self):
        # The registry speaks TLS; its certificate is wrong. Falling back
        # to plain HTTP would send credentials in clear to whoever
        # presented that certificate.
        self.config(permit_fallback_to_http_transport=True, group='oci')
        self.mocker.get(manifest_url(MANIFEST_DIGEST), exc=(
            requests.exceptions.SSLError('[SSL: CERTIFICATE_VERIFY_FAILED] '
                                         'certificate verify failed')))
        self.add_manifest(base='http://' + HOST)
        self.assertRaises(exception.IronicImagesException,
                          self.client.get_manifest, DIGEST_HREF)
        self.assertEqual([manifest_url(MANIFEST_DIGEST)], self.urls())

    def test_verify_from_config(self):
        self.config(verify_ca='False', group='oci')
        self.assertFalse(oci_client.OciClient().registry.verify)
        self.config(verify_ca='/nonexistent/ca.pem', group='oci')
        self.assertRaises(exception.ImageRefValidationFailed,
                          oci_client.OciClient)
        self.assertEqual('/x',
                         oci_client.OciClient(verify='/x').registry.verify)


class TestBlobs(ClientTestCase):

    def download(self, digest=BLOB_DIGEST, size=None):
        out = io.BytesIO()
        result = self.client.download_blob(DIGEST_HREF, digest, out,
                                           size=size)
        return result, out.getvalue()

    def test_verified(self):
        self.add_blob()
        self.assertEqual((BLOB_DIGEST, DATA), self.download(size=len(DATA)))
        self.assertEqual(blob_url(), self.mocker.last_request.url)

    def test_sha512(self):
        digest = digest_of(DATA, 'sha512')
        self.add_blob(digest=digest)
        self.assertEqual((digest, DATA), self.download(digest))

    def test_mismatch(self):
        self.add_blob(data=DATA[:-1] + b'!')
        self.assertRaises(exception.ImageChecksumError, self.download)

    def test_size_differs_from_manifest(self):
        self.add_blob()
        self.assertRaises(exception.ImageDownloadFailed, self.download,
                          size=len(DATA) + 1)

    def test_invalid_digest(self):
        for digest in (None, '', 'sha256:abc', 'md5:' + 'a' * 32,
                       BLOB_DIGEST.upper()):
            self.assertRaises(exception.ImageRefValidationFailed,
                              self.download, digest)
        self.assertEqual(0, self.mocker.call_count)

    def test_statuses(self):
        for status, error in ((404, exception.ImageNotFound),
                              (403, exception.ImageNotFound),
                              (503, exception.TemporaryFailure),
                              (416, exception.ImageDownloadFailed)):
            self.mocker.get(blob_url(), status_code=status)
            self.assertRaises(error, self.download)

    def test_dropped_then_resumed(self):
        self.mocker.get(blob_url(), [
            {'body': io.BytesIO(DATA[:100]),
             'headers': {'Content-Length': str(len(DATA)), 'ETag': '"e"'}},
            {'status_code': 206, 'content': DATA[100:],
             'headers': {'Content-Range': 'bytes 100-%d/%d' % (
                 len(DATA) - 1, len(DATA)), 'ETag': '"e"'}}])
        self.assertEqual((BLOB_DIGEST, DATA), self.download())
        self.assertEqual('bytes=100-',
                         self.mocker.last_request.headers['Range'])

    def redirected(self, location, target, auth='Bearer tok'):
        self.client.registry._authorization[(HOST, REPO)] = auth
        self.mocker.get(blob_url(), status_code=307,
                        headers={'Location': location})
        self.mocker.get(target, content=DATA,
                        headers={'Content-Length': str(len(DATA))})
        self.assertEqual((BLOB_DIGEST, DATA), self.download())
        self.assertEqual(target, self.mocker.last_request.url)
        return self.mocker.last_request.headers.get('Authorization')

    def test_redirect_to_another_host_drops_authorization(self):
        self.assertIsNone(self.redirected('https://cdn.example.com/b?s=1',
                                          'https://cdn.example.com/b?s=1'))

    def test_redirect_on_the_same_host_keeps_authorization(self):
        self.assertEqual('Bearer tok', self.redirected(
            '/storage/b', BASE + '/storage/b'))

    def test_redirect_to_a_secure_cdn_host_keeps_authorization(self):
        for listed in (['other.example', 'CDN.example.com'],
                       ['example.com'], ['.example.com'],
                       ['cdn.example.com:443'], [' example.com ']):
            self.config(secure_cdn_registries=listed, group='oci')
            self.assertEqual('Bearer tok', self.redirected(
                'https://cdn.example.com/b', 'https://cdn.example.com/b'),
                listed)
            self.mocker.reset()

    def test_redirect_to_an_unlisted_host_drops_authorization(self):
        # Not a substring match (Ironic's), never the registry's name.
        for listed in ([HOST], [HOST.split(':')[0]], ['ample.com'],
                       ['cdn.example'], ['example.com:8443'],
                       ['evil.cdn.example.com'], ['.'], ['']):
            self.config(secure_cdn_registries=listed, group='oci')
            for target in ('https://cdn.example.com/b',
                           'https://cdn.example.com.evil.net/b',
                           'https://evilexample.com/b'):
                self.assertIsNone(self.redirected(target, target),
                                  (listed, target))
                self.mocker.reset()

    def test_redirect_limit(self):
        self.config(max_redirects=2, group='http')
        self.mocker.get(blob_url(), status_code=302,
                        headers={'Location': '/r1'})
        self.mocker.get(BASE + '/r1', status_code=302,
                        headers={'Location': '/r2'})
        self.mocker.get(BASE + '/r2', content=DATA)
        self.assertEqual((BLOB_DIGEST, DATA), self.download())
        self.mocker.get(BASE + '/r2', status_code=302,
                        headers={'Location': '/r2'})
        self.assertRaises(exception.ImageDownloadFailed, self.download)
