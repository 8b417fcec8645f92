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

"""oci:// against a registry that wants Bearer tokens from a token server.

The token server records every request: how many tokens were asked, for
which scope and with which credentials.
"""

import base64
import types

from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service import oci
from ironic_images.image_service.oci import client as oci_client
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import token_server
from ironic_images.tests.functional import test_oci_basic as common

USER = 'robot'
PASSWORD = 'token-s3cret'
SCOPE = 'repository:%s:pull' % common.REPO


class TokenTestCase(common.OciTestCase):

    users = None

    def setUp(self):
        super().setUp()
        self.tokens = self.useFixture(token_server.TokenServerFixture(
            users=self.users))
        self.server = self.registry(token_auth=self.tokens.server)
        self.pushed = self.push_index(self.server)
        self.href = self.server.oci_url(common.REPO, 'v1')
        self.raw = self.pushed.artifacts['amd64']['raw']
        self.raw_href = self.server.oci_url(common.REPO,
                                            self.raw.manifest_digest)
        self.tokens.clear_requests()

    def pull(self, service):
        """Identify amd64, show and download it with one service."""
        info = service.identify_specific_image(self.href, cpu_arch='amd64')
        self.assertEqual(self.raw_href, info['oci_image_manifest_url'])
        self.assertEqual(len(common.RAW), service.show(self.raw_href)['size'])
        self.assertDownloads(self.raw_href, common.RAW, service=service)
        return info

    def assertTokenRequests(self, count, user=None):
        requests = self.tokens.requests
        self.assertEqual(count, len(requests), requests)
        for request in requests:
            self.assertEqual(200, request.status)
            self.assertEqual('test-registry', request.service)
            self.assertEqual((SCOPE,), request.scopes)
            self.assertEqual(user is not None, request.basic_auth)
            self.assertEqual(user, request.user)
        return requests


class TestAnonymousTokens(TokenTestCase):

    def test_one_token_for_everything(self):
        service = oci.OciImageService()
        info = self.pull(service)
        # index, manifest, manifest (show), manifest and blob (download)
        # all with the one token.
        request, = self.assertTokenRequests(1)
        self.assertEqual('', request.sub)
        secret = info['image_request_authorization_secret']
        self.assertTrue(secret.startswith('Bearer '))
        self.assertEqual(secret, service.client.get_cached_auth(self.href))
        # A second pull with the same service asks for nothing new.
        self.pull(service)
        self.assertTokenRequests(1)

    def test_each_client_has_its_own_tokens(self):
        self.pull(oci.OciImageService())
        self.pull(oci.OciImageService())
        self.assertTokenRequests(2)

    def test_expired_token_renewed_once(self):
        self.tokens.expire_next(1)
        service = oci.OciImageService()
        self.pull(service)
        first, second = self.assertTokenRequests(2)
        self.assertNotEqual(first.jti, second.jti)
        self.pull(service)
        self.assertTokenRequests(2)

    def test_tokens_that_stay_invalid(self):
        self.tokens.expire_next(100)
        service = oci.OciImageService()
        self.assertRaises(exception.ImageServiceAuthenticationRequired,
                          service.identify_specific_image, self.href)
        # The first token, then one renewal: no more.
        self.assertTokenRequests(2)

    def test_denied_repository(self):
        self.tokens.server.repositories = {'os/other'}
        self.assertRaises(exception.ImageServiceAuthenticationRequired,
                          oci.OciImageService().identify_specific_image,
                          self.href)
        self.assertRaises(exception.ImageServiceAuthenticationRequired,
                          oci.OciImageService().show, self.raw_href)

    def test_token_server_down(self):
        self.tokens.server.stop()
        error = self.assertRaises(exception.IronicImagesException,
                                  oci.OciImageService().show, self.raw_href)
        self.assertIsInstance(error, (
            exception.ImageServiceAuthenticationRequired,
            exception.TemporaryFailure))


class TestAuthenticatedTokens(TokenTestCase):

    users = {USER: PASSWORD}

    def service_with(self, auth_data):
        service = oci.OciImageService()
        service.set_image_auth(self.href, auth_data)
        return service

    def test_basic_authenticated_token_fetch(self):
        service = self.service_with({'username': USER, 'password': PASSWORD})
        self.pull(service)
        request, = self.assertTokenRequests(1, user=USER)
        self.assertEqual(USER, request.sub)

    def test_pull_secret_of_a_node(self):
        secret = base64.b64encode(('%s:%s' % (USER, PASSWORD)).encode())
        node = types.SimpleNamespace(
            instance_info={}, driver_info={'image_pull_secret':
                                           secret.decode()})
        service = self.service_with(
            image_service.get_image_service_auth_override(node))
        self.pull(service)
        self.assertTokenRequests(1, user=USER)

    def test_registry_token_as_pull_secret(self):
        # A bare token is presented to the registry as Bearer as is.
        token = self.tokens.make_token([SCOPE])
        node = types.SimpleNamespace(
            instance_info={'image_pull_secret': token}, driver_info={})
        service = self.service_with(
            image_service.get_image_service_auth_override(node))
        self.pull(service)
        self.assertTokenRequests(0)

    def test_wrong_password(self):
        service = self.service_with({'username': USER,
                                     'password': 'wrong-pw-x9'})
        error = self.assertRaises(
            exception.ImageServiceAuthenticationRequired,
            service.identify_specific_image, self.href)
        self.assertNotIn('wrong-pw-x9', str(error))
        self.assertEqual([(True, USER, 401)],
                         [(r.basic_auth, r.user, r.status)
                          for r in self.tokens.requests])
        self.assertDownloadFails(exception.ImageServiceAuthenticationRequired,
                                 self.raw_href, service=service)

    def test_no_credentials(self):
        self.assertRaises(exception.ImageServiceAuthenticationRequired,
                          oci.OciImageService().show, self.raw_href)
        self.assertEqual([(False, 401)], [(r.basic_auth, r.status)
                                          for r in self.tokens.requests])

    def test_client_level_api(self):
        client = oci_client.OciClient()
        client.authenticate(self.href, USER, PASSWORD)
        index = client.get_artifact_index(self.href)
        self.assertEqual(self.pushed.index, index)
        manifest = client.get_manifest(self.href,
                                       digest=self.raw.manifest_digest)
        self.assertEqual(self.raw.manifest, manifest)
        self.assertEqual(['latest', 'v1'], sorted(client.get_tags(self.href)))
        self.assertTokenRequests(1, user=USER)
        self.assertEqual(
            '%s/v2/%s/blobs/%s' % (self.server.url, common.REPO,
                                   self.raw.blob_digest),
            client.get_blob_url(self.href, self.raw.blob_digest))
        self.assertEqual(oci_push.MANIFEST, manifest['mediaType'])
