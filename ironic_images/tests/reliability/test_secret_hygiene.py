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

"""Secret hygiene: no credential in a log line or an exception, ever.

Every logger (ours and the libraries', urllib3 and keystoneauth included)
is set to DEBUG and captured while basic, bearer, pull-secret and Glance
token flows run against real servers on loopback, successful and failing
(wrong credentials, missing images, dropped connections, checksum
mismatches). Every exception raised is kept with its causes and
traceback. No secret, in clear or base64, may appear in any of it.

Credentials must also never reach a host outside the trusted list: a
FaultServer on ``localhost`` (another host than ``127.0.0.1``) is the
redirect target, and the headers it received are checked on its side.
"""

import base64
import hashlib
import io
import json
import logging
import os
import traceback
import uuid

import fixtures
from oslo_context import context as oslo_context
from oslo_utils import units

from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service import http
from ironic_images.image_service import oci
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import registry
from ironic_images.tests.functional.servers import token_server
from ironic_images.tests.reliability import base

USER = 'robot'
DATA = os.urandom(units.Mi + 17)
SHA256 = hashlib.sha256(DATA).hexdigest()


def new_secret(what):
    # Unique, long and URL-safe, so a leak cannot hide or be a false hit.
    return '%s-%s' % (what, uuid.uuid4().hex)


class _NotTheTestServers(logging.Filter):
    """The test servers log what they receive: that is the server side."""

    def filter(self, record):
        return not record.name.startswith('ironic_images.tests')


class AllLoggersAtDebug(fixtures.Fixture):
    """Set every logger to DEBUG and capture everything they emit.

    Except the test servers' own loggers: what a server receives is
    checked on the server's side, not in the client's logs.
    """

    def _setUp(self):
        manager = logging.root.manager
        for name, logger in list(manager.loggerDict.items()):
            if isinstance(logger, logging.Logger) and logger.level:
                self.addCleanup(logger.setLevel, logger.level)
                logger.setLevel(logging.DEBUG)
        self.fake = self.useFixture(fixtures.FakeLogger(
            level=logging.DEBUG,
            format='%(levelname)s %(name)s %(message)s'))
        for handler in logging.root.handlers:
            handler.addFilter(_NotTheTestServers())

    @property
    def output(self):
        return self.fake.output


class SecretHygieneTestCase(base.ReliabilityTestCase):

    def setUp(self):
        super().setUp()
        self.secrets = []
        self.errors = []
        self.logs = self.useFixture(AllLoggersAtDebug())
        self.outsider = self.useFixture(faults.FaultServerFixture())
        self.outsider.add('/elsewhere.img', body=DATA)
        # Another host than 127.0.0.1, on loopback.
        self.outside_url = 'http://localhost:%d/elsewhere.img' % (
            self.outsider.port)

    def secret(self, what):
        value = new_secret(what)
        self.secrets.append(value)
        return value

    def basic(self, user, password):
        pair = ('%s:%s' % (user, password)).encode()
        self.secrets.append(base64.b64encode(pair).decode())
        return self.secrets[-1]

    def attempt(self, function, *args, **kwargs):
        """Call; keep an exception of ours for the check, re-raise others.

        :returns: the result, or the exception.
        """
        try:
            return function(*args, **kwargs)
        except exception.IronicImagesException as error:
            self.errors.append(error)
            return error

    def download(self, service, href, **kwargs):
        dest = os.path.join(self.dest_dir, 'disk.img')

        def _download():
            with fileutils.atomic_write(dest) as image_file:
                service.download(href, image_file, **kwargs)
            with open(dest, 'rb') as f:
                return hashlib.sha256(f.read()).hexdigest()

        return self.attempt(_download)

    def assertNoSecretLeaked(self):
        texts = [('the logs', self.logs.output)]
        for error in self.errors:
            texts.append(('%s' % type(error).__name__, '\n'.join([
                str(error), repr(error), repr(error.args),
                repr(getattr(error, 'kwargs', None))]
                + traceback.format_exception(error))))
        self.assertTrue(self.secrets)
        for where, text in texts:
            for value in self.secrets:
                at = text.find(value)
                self.assertEqual(-1, at, 'a secret is in %s: ...%s...' % (
                    where, text[max(0, at - 200):at + 50]))
        self.assertNotIn('Authorization', self.outsider_headers())

    def outsider_headers(self):
        names = set()
        for request in self.outsider.requests:
            names.update(name.title() for name in request.headers)
        return names


class TestHttpSecrets(SecretHygieneTestCase):

    def test_basic_auth_from_config(self):
        password = self.secret('http-password')
        self.basic(USER, password)
        tmp = self.useFixture(fixtures.TempDir()).path
        root = os.path.join(tmp, 'root')
        os.mkdir(root)
        with open(os.path.join(root, 'disk.img'), 'wb') as f:
            f.write(DATA)
        locations = nginx.redirect_location('/away.img', self.outside_url)
        server = self.useFixture(nginx.NginxFixture(
            root, locations=locations, htpasswd=nginx.make_htpasswd(
                os.path.join(tmp, 'htpasswd'), USER, password)))
        self.config(auth_strategy='http_basic', user=USER, password=password,
                    group='http')
        service = http.HttpImageService()
        url = server.url_for('disk.img')
        self.assertEqual(SHA256, self.download(service, url,
                                               checksum='sha256:' + SHA256))
        self.attempt(service.show, url)
        self.assertIsInstance(self.download(service, url,
                                            checksum='sha256:' + 'a' * 64),
                              exception.ImageChecksumError)
        self.assertIsInstance(self.download(service, server.url_for('no')),
                              exception.IronicImagesException)
        # The redirect to another host: the image arrives, the password
        # does not.
        self.assertEqual(SHA256, self.download(service,
                                               server.url_for('away.img')))
        self.assertTrue(self.outsider.requests)
        self.config(password=self.secret('wrong-password'), group='http')
        self.assertIsInstance(self.attempt(service.show, url),
                              exception.ImageServiceAuthenticationRequired)
        self.assertNoSecretLeaked()

    def test_credentials_in_the_url(self):
        password = self.secret('url-password')
        self.basic(USER, password)
        signature = self.secret('signature')
        server = self.useFixture(faults.FaultServerFixture())
        server.add('/disk.img', body=DATA)
        server.add('/away.img', body=b'')
        server.script('/away.img', [faults.redirect(self.outside_url)] * 9)
        url = 'http://%s:%s@127.0.0.1:%d/disk.img?X-Amz-Signature=%s' % (
            USER, password, server.port, signature)
        service = http.HttpImageService()
        for script in ([], [faults.cut(1000)], [faults.stall(10, 2)] * 4,
                       [faults.error(503)] * 5, [faults.error(404)],
                       [faults.cut(5000, reset=True)] * 4):
            server.script('/disk.img', script, method='GET')
            self.download(service, url, checksum='sha256:' + SHA256)
            self.attempt(service.show, url)
        self.download(service, url.replace('disk.img', 'away.img'))
        self.attempt(service.validate_href, url.replace('127.0.0.1', '[::1'))
        self.assertTrue(self.outsider.requests)
        self.assertTrue(self.errors)
        self.assertNoSecretLeaked()


class TestOciSecrets(SecretHygieneTestCase):

    def pull(self, service, server, repo='sec/disk'):
        info = self.attempt(service.identify_specific_image,
                            server.oci_url(repo, 'v1'))
        href = server.oci_url(repo, self.artifact.manifest_digest)
        self.attempt(service.show, href)
        self.download(service, href)
        self.download(service, server.oci_url(repo, 'sha256:' + 'f' * 64))
        self.attempt(service.identify_specific_image,
                     server.oci_url(repo, 'missing'))
        return info

    def test_basic_and_pull_secret(self):
        password = self.secret('registry-password')
        pull_secret = self.basic(USER, password)
        server = self.useFixture(registry.RegistryFixture(
            htpasswd=(USER, password)))
        self.config(permit_fallback_to_http_transport=True, group='oci')
        self.artifact = oci_push.push_artifact(server, 'sec/disk', 'v1',
                                               DATA, 'disk.raw')
        service = oci.OciImageService()
        service.set_image_auth(server.oci_url('sec/disk'),
                               {'username': USER, 'password': password})
        self.pull(service, server)
        # A node's pull secret, the way a conductor passes it.
        node = type('Node', (), {'driver_info': {}, 'instance_info': {
            'image_pull_secret': pull_secret}})()
        auth = image_service.get_image_service_auth_override(node)
        service = oci.OciImageService()
        service.set_image_auth(server.oci_url('sec/disk'), auth)
        self.pull(service, server)
        wrong = oci.OciImageService()
        wrong.set_image_auth(server.oci_url('sec/disk'), {
            'username': '', 'password': self.basic(
                USER, self.secret('wrong-password'))})
        self.assertIsInstance(self.download(wrong, server.oci_url(
            'sec/disk', self.artifact.manifest_digest)),
            exception.ImageServiceAuthenticationRequired)
        self.assertNoSecretLeaked()

    def test_bearer_tokens(self):
        password = self.secret('token-password')
        self.basic(USER, password)
        tokens = self.useFixture(token_server.TokenServerFixture(
            users={USER: password}))
        server = self.useFixture(registry.RegistryFixture(
            token_auth=tokens.server))
        self.config(permit_fallback_to_http_transport=True, group='oci')
        self.artifact = oci_push.push_artifact(server, 'sec/disk', 'v1',
                                               DATA, 'disk.raw')
        tokens.clear_requests()
        service = oci.OciImageService()
        service.set_image_auth(server.oci_url('sec/disk'),
                               {'username': USER, 'password': password})
        info = self.pull(service, server)
        self.assertTrue(tokens.tokens_issued)
        # The one place a token may go: the answer meant to carry it.
        scheme, _sep, token = info['image_request_authorization_secret'
                                   ].partition(' ')
        self.assertEqual('Bearer', scheme)
        self.secrets.append(token)
        self.assertNoSecretLeaked()

    def test_no_credentials_to_an_untrusted_blob_host(self):
        """A fake registry asks for Basic, then redirects the blob away."""
        password = self.secret('cdn-password')
        self.basic(USER, password)
        fake = self.useFixture(faults.FaultServerFixture())
        self.config(permit_fallback_to_http_transport=True, group='oci')
        blob = oci_push.sha256_digest(DATA)
        manifest = oci_push.encode_manifest(oci_push.artifact_manifest(
            blob, len(DATA), 'disk.raw'))
        digest = oci_push.sha256_digest(manifest)
        manifest_path = '/v2/sec/disk/manifests/' + digest
        blob_path = '/v2/sec/disk/blobs/' + blob
        fake.add(manifest_path, body=manifest, content_type=oci_push.MANIFEST)
        fake.add(blob_path, body=DATA)
        self.outsider.add('/elsewhere.img', body=DATA)
        challenge = faults.Fault(status=401, headers={
            'Www-Authenticate': 'Basic realm="test"'})
        fake.script(manifest_path, [challenge], method='GET')
        fake.script(blob_path, [faults.redirect(self.outside_url, 307)] * 2,
                    method='GET')
        href = 'oci://127.0.0.1:%d/sec/disk@%s' % (fake.port, digest)
        service = oci.OciImageService()
        service.set_image_auth(href, {'username': USER, 'password': password})
        written = io.BytesIO()
        service.download(href, written)
        self.assertEqual(DATA, written.getvalue())
        # The registry got the credentials, the other host did not.
        self.assertIn('Basic ' + self.secrets[-1], [
            r.header('authorization') for r in fake.requests])
        self.assertTrue(self.outsider.requests)
        self.assertNoSecretLeaked()


class TestGlanceTokenSecrets(SecretHygieneTestCase):
    """A user's token in the request context, against a fake Glance."""

    def test_user_token(self):
        token = self.secret('glance-token')
        server = self.useFixture(faults.FaultServerFixture())
        image_id = str(uuid.uuid4())
        record = {'id': image_id, 'status': 'active', 'size': len(DATA),
                  'disk_format': 'raw', 'container_format': 'bare',
                  'os_hash_algo': 'sha512', 'visibility': 'private',
                  'os_hash_value': hashlib.sha512(DATA).hexdigest(),
                  'checksum': hashlib.md5(DATA).hexdigest(),
                  'created_at': '2026-01-01T00:00:00Z',
                  'updated_at': '2026-01-01T00:00:00Z'}
        record_path = '/v2/images/' + image_id
        server.add(record_path, body=json.dumps(record).encode(),
                   content_type='application/json')
        data_path = record_path + '/file'
        server.add(data_path, body=DATA)
        self.config(auth_type='none', endpoint_override=server.url,
                    group='glance')
        context = oslo_context.RequestContext(auth_token=token)
        service = image_service.get_image_service(image_id, context=context)
        self.assertEqual(SHA256, self.download(service, image_id))
        for script in ([faults.cut(1000)], [faults.error(401)],
                       [faults.error(503)] * 9, [faults.error(404)]):
            server.script(data_path, script, method='GET')
            self.download(service, image_id)
        server.script(record_path, [faults.error(403)])
        self.attempt(service.show, image_id)
        self.assertIn(token, [r.header('x-auth-token')
                              for r in server.requests])
        self.assertTrue(self.errors)
        self.assertNotIn('X-Auth-Token', self.outsider_headers())
        self.assertNoSecretLeaked()

    def test_no_token_to_a_redirect_host(self):
        # keystoneauth would follow a redirect of GET /v2/images/ID/file
        # to another host with the user's X-Auth-Token; Glance's API never
        # redirects, so glance_client follows none.
        token = self.secret('glance-token')
        server = self.useFixture(faults.FaultServerFixture())
        image_id = str(uuid.uuid4())
        server.add('/v2/images/' + image_id, body=json.dumps({
            'id': image_id, 'status': 'active', 'size': len(DATA),
            'os_hash_algo': 'sha512',
            'os_hash_value': hashlib.sha512(DATA).hexdigest()}).encode(),
            content_type='application/json')
        server.add('/v2/images/%s/file' % image_id, body=b'')
        server.script('/v2/images/%s/file' % image_id,
                      [faults.redirect(self.outside_url)] * 4)
        self.config(auth_type='none', endpoint_override=server.url,
                    group='glance')
        service = image_service.get_image_service(
            image_id, context=oslo_context.RequestContext(auth_token=token))
        self.assertIsInstance(self.download(service, image_id),
                              exception.ImageDownloadFailed)
        self.assertNotIn('X-Auth-Token', self.outsider_headers())
