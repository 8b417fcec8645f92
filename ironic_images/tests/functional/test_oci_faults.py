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

"""oci:// blob redirects, rate limits, server errors, drops and mirrors.

Redirects go through the registry's redirect middleware to nginx on
``localhost`` (another host than the registry's 127.0.0.1); nginx's log
tells whether the Authorization header came along. The FaultServer acts as
a tiny fake registry serving one manifest and its blob, as a mirror, or as
a rate-limiting proxy in front of the real registry.
"""

import json
import socket

import fixtures
import requests

from ironic_images import exception
from ironic_images.image_service import oci
from ironic_images.tests.functional.servers import base as servers_base
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional import test_oci_basic as common
from ironic_images.transfer import http_client

USER = 'puller'
PASSWORD = 'cdn-s3cret'
FAKE_REPO = 'fake/disk'


def record_waits(test):
    """Record the seconds waited before each retry, in order."""
    waits = []
    real_wait = http_client.wait_backoff

    def recording_wait(retry_state):
        waits.append(real_wait(retry_state))
        return waits[-1]

    test.useFixture(fixtures.MockPatchObject(http_client, 'wait_backoff',
                                             recording_wait))
    return waits


class TestBlobRedirects(common.OciTestCase):

    def start(self, **kwargs):
        self.server = self.registry(redirect_to_nginx=True,
                                    redirect_host='localhost', **kwargs)
        self.art = oci_push.push_artifact(self.server, 'cdn/disk', 'v1',
                                          common.RAW, 'disk.raw')
        self.href = self.server.oci_url('cdn/disk', self.art.manifest_digest)
        self.service = oci.OciImageService()
        if kwargs.get('htpasswd'):
            self.service.set_image_auth(self.href, {'username': USER,
                                                    'password': PASSWORD})
        self.server.nginx.reset_log()

    def assertRedirectedDownload(self, authorization):
        self.assertDownloads(self.href, common.RAW, service=self.service)
        entry, = self.server.nginx.requests_log(count=1)
        self.assertEqual(('GET', 200, len(common.RAW)),
                         (entry['method'], entry['status'],
                          entry['body_bytes_sent']))
        self.assertEqual(
            self.server.redirect_url(self.art.blob_digest).split(
                str(self.server.nginx.port), 1)[1], entry['uri'])
        self.assertEqual(authorization, entry['authorization'])

    def test_untrusted_registry_drops_authorization(self):
        self.start(htpasswd=(USER, PASSWORD))
        self.assertNotIn('127.0.0.1', self.cfg_fixture.conf.oci
                         .secure_cdn_registries)
        self.assertRedirectedDownload(authorization=False)

    def test_listed_redirect_target_gets_authorization(self):
        # [oci]secure_cdn_registries names the redirect's target (the
        # CDN: nginx on localhost), as Ironic reads it.
        self.start(htpasswd=(USER, PASSWORD))
        self.config(secure_cdn_registries=['localhost'], group='oci')
        self.assertRedirectedDownload(authorization=True)

    def test_listed_redirect_target_by_host_and_port(self):
        self.start(htpasswd=(USER, PASSWORD))
        self.config(secure_cdn_registries=[
            'other.example', 'localhost:%d' % self.server.nginx.port],
            group='oci')
        self.assertRedirectedDownload(authorization=True)

    def test_listed_registry_does_not_vouch_for_its_redirects(self):
        self.start(htpasswd=(USER, PASSWORD))
        self.config(secure_cdn_registries=[
            '127.0.0.1', self.server.host, 'localhost:1', 'calhost'],
            group='oci')
        self.assertRedirectedDownload(authorization=False)

    def test_anonymous_registry(self):
        self.start()
        self.config(secure_cdn_registries=['localhost'], group='oci')
        self.assertRedirectedDownload(authorization=False)

    def test_identify_gives_the_registry_url(self):
        self.start(htpasswd=(USER, PASSWORD))
        info = self.service.identify_specific_image(
            self.server.oci_url('cdn/disk', 'v1'))
        self.assertEqual('%s/v2/cdn/disk/blobs/%s' % (
            self.server.url, self.art.blob_digest), info['image_url'])

    def test_corrupted_blob_behind_redirect(self):
        self.start(htpasswd=(USER, PASSWORD))
        with open(self.server.blob_path(self.art.blob_digest), 'r+b') as f:
            f.write(b'X')
        self.assertDownloadFails(exception.ImageChecksumError, self.href,
                                 service=self.service)
        self.assertEqual(1, len(self.server.nginx.requests_log(count=1)))


class FakeRegistryTestCase(common.OciTestCase):
    """A FaultServer serving one artifact manifest and its blob."""

    def setUp(self):
        super().setUp()
        self.config(permit_fallback_to_http_transport=True, group='oci')
        self.fake = self.useFixture(faults.FaultServerFixture())
        self.data = common.QCOW2
        self.blob_digest = oci_push.sha256_digest(self.data)
        manifest = oci_push.artifact_manifest(self.blob_digest,
                                              len(self.data), 'disk.qcow2')
        self.manifest_bytes = oci_push.encode_manifest(manifest)
        self.manifest_digest = oci_push.sha256_digest(self.manifest_bytes)
        self.host = '127.0.0.1:%d' % self.fake.port
        self.manifest_path = '/v2/%s/manifests/%s' % (FAKE_REPO,
                                                      self.manifest_digest)
        self.blob_path = '/v2/%s/blobs/%s' % (FAKE_REPO, self.blob_digest)
        self.fake.add(self.manifest_path, body=self.manifest_bytes,
                      content_type=oci_push.MANIFEST)
        self.fake.add(self.blob_path, body=self.data)
        self.href = 'oci://%s/%s@%s' % (self.host, FAKE_REPO,
                                        self.manifest_digest)

    def gets(self, path):
        return [r for r in self.fake.requests_for(path) if r.method == 'GET']


class RateLimitTests:
    """429 then 200 for the manifest and for the blob."""

    def test_429_then_200(self):
        self.fake.script(self.manifest_path,
                         [faults.error(429, retry_after=1)])
        self.fake.script(self.blob_path, [faults.error(429, retry_after=0)])
        waits = record_waits(self)
        self.assertDownloads(self.href, self.data)
        # The waits the registry asked for, in order, were the ones made.
        self.assertEqual([1.0, 0.0], waits)
        # Each GET that got a 429 was made again, and the second one was
        # answered.
        self.assertEqual(2, len(self.gets(self.manifest_path)))
        self.assertEqual(2, len(self.gets(self.blob_path)))


class TestFakeRegistry(FakeRegistryTestCase, RateLimitTests):

    def test_serves(self):
        self.assertDownloads(self.href, self.data)
        self.assertEqual(1, len(self.gets(self.manifest_path)))
        self.assertEqual(1, len(self.gets(self.blob_path)))
        accept = self.gets(self.manifest_path)[0].header('Accept')
        for media_type in (oci_push.INDEX, oci_push.MANIFEST,
                           oci_push.DOCKER_MANIFEST_LIST,
                           oci_push.DOCKER_MANIFEST):
            self.assertIn(media_type, accept)

    def test_5xx_then_200(self):
        self.fake.script(self.manifest_path, [faults.error(503)])
        self.fake.script(self.blob_path, [faults.error(500),
                                          faults.error(502)])
        self.assertDownloads(self.href, self.data)
        self.assertEqual(2, len(self.gets(self.manifest_path)))
        self.assertEqual(3, len(self.gets(self.blob_path)))

    def test_persistent_5xx_is_temporary_failure(self):
        self.fake.script(self.blob_path, [faults.error(503)] * 3)
        error = self.assertDownloadFails(exception.TemporaryFailure,
                                         self.href)
        self.assertNotIsInstance(error, exception.ImageHostRateLimitFailure)
        self.assertEqual(3, len(self.gets(self.blob_path)))  # retries=2

    def test_persistent_429_is_rate_limit_failure(self):
        self.fake.script(self.manifest_path,
                         [faults.error(429, retry_after=0)] * 3)
        self.assertRaises(exception.ImageHostRateLimitFailure,
                          oci.OciImageService().show, self.href)
        self.assertEqual(3, len(self.gets(self.manifest_path)))

    def test_dropped_blob_is_resumed(self):
        self.fake.script(self.blob_path, [faults.cut(100 * 1024)])
        self.assertDownloads(self.href, self.data)
        first, second = self.gets(self.blob_path)
        self.assertIsNone(first.header('Range'))
        self.assertEqual('bytes=%d-' % (100 * 1024), second.header('Range'))

    def test_manifest_not_matching_its_digest(self):
        self.fake.add(self.manifest_path,
                      body=self.manifest_bytes.replace(b'"size"', b'"size" '),
                      content_type=oci_push.MANIFEST)
        self.assertRaises(exception.ImageChecksumError,
                          oci.OciImageService().show, self.href)
        self.assertDownloadFails(exception.ImageChecksumError, self.href)
        self.assertEqual([], self.gets(self.blob_path))

    def test_malformed_manifest(self):
        for body in (b'{"layers": [', b'[]', b'{"layers": {}}',
                     json.dumps({'layers': [{'size': 3}]}).encode()):
            digest = oci_push.sha256_digest(body)
            path = '/v2/%s/manifests/%s' % (FAKE_REPO, digest)
            self.fake.add(path, body=body, content_type=oci_push.MANIFEST)
            href = 'oci://%s/%s@%s' % (self.host, FAKE_REPO, digest)
            self.assertRaises(exception.ImageRefValidationFailed,
                              oci.OciImageService().show, href)
            self.assertDownloadFails(exception.ImageRefValidationFailed,
                                     href)

    def test_missing_blob_is_not_found(self):
        self.fake.script(self.blob_path, [faults.error(404)])
        error = self.assertDownloadFails(exception.ImageNotFound, self.href)
        self.assertIn('404', str(error))


class TestRateLimitedRegistry(FakeRegistryTestCase, RateLimitTests):
    """The FaultServer as a rate-limiting proxy in front of the registry."""

    def setUp(self):
        super().setUp()
        origin = self.registry()
        self.art = oci_push.push_artifact(origin, 'os/disk', 'v1',
                                          common.RAW, 'disk.raw')
        self.fake.forward_to(origin.url)
        self.data = common.RAW
        self.manifest_path = '/v2/os/disk/manifests/%s' % (
            self.art.manifest_digest)
        self.blob_path = '/v2/os/disk/blobs/%s' % self.art.blob_digest
        self.href = 'oci://%s/os/disk@%s' % (self.host,
                                             self.art.manifest_digest)

    def test_429_on_the_tag_then_200(self):
        tag_path = '/v2/os/disk/manifests/v1'
        self.fake.script(tag_path, [faults.error(429, retry_after=0)])
        info = oci.OciImageService().identify_specific_image(
            'oci://%s/os/disk:v1' % self.host)
        self.assertEqual(self.art.blob_digest,
                         info['image_container_blob_digest'])
        self.assertEqual(2, len(self.gets(tag_path)))

    def test_429_persisting(self):
        self.fake.script(self.blob_path,
                         [faults.error(429, retry_after=0)] * 3)
        self.assertDownloadFails(exception.ImageHostRateLimitFailure,
                                 self.href)
        self.assertEqual(3, len(self.gets(self.blob_path)))


class TestMirrors(FakeRegistryTestCase):

    def test_mirror_without_the_image_then_origin(self):
        origin = self.registry()
        art = oci_push.push_artifact(origin, 'os/disk', 'v1', common.RAW,
                                     'disk.raw')
        self.config(registry_mirrors=['%s=%s' % (origin.host, self.host)],
                    group='oci')
        href = origin.oci_url('os/disk', art.manifest_digest)
        self.assertDownloads(href, common.RAW)
        asked = [r.path for r in self.fake.requests if r.method == 'GET']
        self.assertEqual(['/v2/os/disk/manifests/' + art.manifest_digest,
                          '/v2/os/disk/blobs/' + art.blob_digest], asked)

    def test_mirror_serves_without_the_origin(self):
        dead = '127.0.0.1:%d' % servers_base.free_port()
        self.config(registry_mirrors=['%s=%s' % (dead, self.host)],
                    group='oci')
        href = 'oci://%s/%s@%s' % (dead, FAKE_REPO, self.manifest_digest)
        self.assertDownloads(href, self.data)
        self.assertEqual(1, len(self.gets(self.blob_path)))

    def test_failing_mirror_then_origin(self):
        origin = self.registry()
        art = oci_push.push_artifact(origin, 'os/disk', 'v1', common.RAW,
                                     'disk.raw')
        path = '/v2/os/disk/manifests/v1'
        self.fake.add(path, body=b'x')
        self.fake.script(path, [faults.error(503)] * 3)
        self.config(registry_mirrors=['%s=%s' % (origin.host, self.host)],
                    group='oci')
        info = oci.OciImageService().identify_specific_image(
            origin.oci_url('os/disk', 'v1'))
        self.assertEqual(art.blob_digest, info['image_container_blob_digest'])
        self.assertEqual(3, len(self.gets(path)))


class TestDeadMirrors(FakeRegistryTestCase):
    """A mirror that cannot be reached is left at once for the origin."""

    def setUp(self):
        super().setUp()
        self.config(webserver_connection_timeout=1)
        self.attempts = []
        real_request = requests.Session.request

        def counting_request(session, method, url, *args, **kwargs):
            self.attempts.append(url)
            return real_request(session, method, url, *args, **kwargs)

        self.useFixture(fixtures.MockPatchObject(
            requests.Session, 'request', autospec=True,
            side_effect=counting_request))

    def assertMirrorAskedOnce(self, mirror):
        self.config(registry_mirrors=['%s=%s' % (self.host, mirror)],
                    group='oci')
        self.assertDownloads(self.href, self.data)
        # One attempt per request, no retries: the manifest over HTTPS,
        # then plain HTTP (the fallback is permitted here, and remembered),
        # the blob over plain HTTP.
        self.assertEqual(['https', 'http', 'http'],
                         [url.split(':')[0] for url in self.attempts
                          if mirror in url])
        self.assertEqual(1, len(self.gets(self.manifest_path)))
        self.assertEqual(1, len(self.gets(self.blob_path)))

    def test_refused_mirror(self):
        self.assertMirrorAskedOnce('127.0.0.1:%d' % servers_base.free_port())

    def test_mirror_that_never_accepts(self):
        # A listening socket that never accepts, its backlog full: a
        # connection to it times out, as to a host that is gone.
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(('127.0.0.1', 0))
        listener.listen(0)
        for _ in range(3):
            filler = socket.socket()
            self.addCleanup(filler.close)
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
        self.assertMirrorAskedOnce('127.0.0.1:%d' % listener.getsockname()[1])
