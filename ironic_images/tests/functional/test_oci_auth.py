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

"""oci:// against a registry with Basic auth (htpasswd) and with TLS.

Credentials come from set_image_auth, from a node's image_pull_secret
(through get_image_service_auth_override) and from
[oci]authentication_config.
"""

import base64
import json
import os
import types

from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service import oci
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import tls
from ironic_images.tests.functional import test_oci_basic as common

USER = 'puller'
PASSWORD = 's3cr:et-pw'


def b64(text):
    return base64.b64encode(text.encode()).decode()


def node(instance_secret=None, driver_secret=None):
    instance_info = {'image_source': 'oci://example'}
    driver_info = {}
    if instance_secret:
        instance_info['image_pull_secret'] = instance_secret
    if driver_secret:
        driver_info['image_pull_secret'] = driver_secret
    return types.SimpleNamespace(instance_info=instance_info,
                                 driver_info=driver_info)


class TestHtpasswd(common.OciTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.registry(htpasswd=(USER, PASSWORD))
        self.pushed = self.push_index(self.server)
        self.href = self.server.oci_url(common.REPO, 'v1')

    def assertPulls(self, service, href=None):
        """Identify amd64 with ``service``, then download with it."""
        href = href or self.href
        info = service.identify_specific_image(href, cpu_arch='x86_64')
        self.assertEqual('Basic ' + b64('%s:%s' % (USER, PASSWORD)),
                         info['image_request_authorization_secret'])
        self.assertDownloads(info['oci_image_manifest_url'], common.RAW,
                             service=service)
        self.assertEqual(
            self.pushed.artifacts['amd64']['raw'].blob_digest,
            service.transfer_verified_checksum)

    def test_set_image_auth(self):
        service = oci.OciImageService()
        self.assertTrue(service.is_auth_set_needed)
        service.set_image_auth(self.href, {'username': USER,
                                           'password': PASSWORD})
        self.assertFalse(service.is_auth_set_needed)
        self.assertPulls(service)

    def test_node_instance_info_user_password(self):
        auth = image_service.get_image_service_auth_override(
            node(instance_secret='%s:%s' % (USER, PASSWORD),
                 driver_secret='wrong:wrong'))
        service = oci.OciImageService()
        service.set_image_auth(self.href, auth)
        self.assertPulls(service)

    def test_node_driver_info_docker_auth(self):
        auth = image_service.get_image_service_auth_override(
            node(driver_secret=b64('%s:%s' % (USER, PASSWORD))))
        service = oci.OciImageService()
        service.set_image_auth(self.href, auth)
        self.assertPulls(service)

    def test_node_user_secret_not_permitted(self):
        # The user's (wrong) secret is ignored; the admin's is used.
        auth = image_service.get_image_service_auth_override(
            node(instance_secret='wrong:wrong',
                 driver_secret='%s:%s' % (USER, PASSWORD)),
            permit_user_auth=False)
        service = oci.OciImageService()
        service.set_image_auth(self.href, auth)
        self.assertPulls(service)

    def write_auth_config(self, auths):
        path = os.path.join(self.tmp, 'config.json')
        with open(path, 'w') as f:
            json.dump({'auths': auths}, f)
        self.config(authentication_config=path, group='oci')

    def test_authentication_config(self):
        self.write_auth_config({
            'other.example.com': {'auth': b64('x:y')},
            self.server.host: {'auth': b64('%s:%s' % (USER, PASSWORD))}})
        service = oci.OciImageService()
        service.set_image_auth(self.href, None)
        self.assertPulls(service)
        # Without set_image_auth at all.
        self.assertPulls(oci.OciImageService())

    def test_authentication_config_url_key(self):
        self.write_auth_config({
            'http://%s/v2/' % self.server.host: {'username': USER,
                                                 'password': PASSWORD}})
        self.assertPulls(oci.OciImageService())

    def test_node_secret_wins_over_config(self):
        self.write_auth_config({self.server.host: {'auth': b64('x:y')}})
        service = oci.OciImageService()
        service.set_image_auth(self.href,
                               image_service.get_image_service_auth_override(
                                   node(driver_secret='%s:%s' % (USER,
                                                                 PASSWORD))))
        self.assertPulls(service)

    def assertRefused(self, service):
        art = self.pushed.artifacts['amd64']['raw']
        digest_href = self.server.oci_url(common.REPO, art.manifest_digest)
        for call, href in ((service.identify_specific_image, self.href),
                           (service.show, digest_href)):
            error = self.assertRaises(
                exception.ImageServiceAuthenticationRequired, call, href)
            self.assertNotIn(PASSWORD, str(error))
        self.assertDownloadFails(exception.ImageServiceAuthenticationRequired,
                                 digest_href, service=service)
        self.assertIsNone(service.transfer_verified_checksum)

    def test_wrong_password(self):
        service = oci.OciImageService()
        service.set_image_auth(self.href, {'username': USER,
                                           'password': 'wrong'})
        self.assertRefused(service)

    def test_wrong_pull_secret(self):
        service = oci.OciImageService()
        service.set_image_auth(
            self.href, image_service.get_image_service_auth_override(
                node(instance_secret=b64(USER + ':nope'))))
        self.assertRefused(service)

    def test_wrong_authentication_config(self):
        self.write_auth_config({self.server.host: {'auth': b64('x:y')}})
        self.assertRefused(oci.OciImageService())

    def test_no_credentials(self):
        service = oci.OciImageService()
        service.set_image_auth(self.href, None)
        self.assertRefused(service)

    def test_missing_tag_with_credentials(self):
        service = oci.OciImageService()
        service.set_image_auth(self.href, {'username': USER,
                                           'password': PASSWORD})
        error = self.assertRaises(exception.OciImageTagNotFound,
                                  service.identify_specific_image,
                                  self.server.oci_url(common.REPO, 'nope'))
        self.assertEqual('latest, v1', error.kwargs['tags'])


class TestTLS(common.OciTestCase):

    def setUp(self):
        super().setUp()
        self.ca = tls.make_test_ca(self.tmp)
        self.server = self.registry(tls=self.ca)
        self.assertEqual('https', self.server.scheme)
        self.art = oci_push.push_artifact(self.server, 'tls/disk', 'v1',
                                          common.QCOW2, 'disk.qcow2')
        self.href = self.server.oci_url('tls/disk', self.art.manifest_digest)

    def test_with_the_test_ca(self):
        service = oci.OciImageService()
        info = service.identify_specific_image(
            self.server.oci_url('tls/disk', 'v1'))
        self.assertEqual('https://%s/v2/tls/disk/blobs/%s' % (
            self.server.host, self.art.blob_digest), info['image_url'])
        self.assertEqual(self.href, info['oci_image_manifest_url'])
        self.assertDownloads(self.href, common.QCOW2, service=service)

    def assertTLSRefused(self):
        error = self.assertRaises(exception.IronicImagesException,
                                  oci.OciImageService().show, self.href)
        self.assertIn('certificate', str(error).lower())
        self.assertDownloadFails(exception.IronicImagesException, self.href)

    def test_refused_without_the_ca(self):
        self.config(verify_ca='True', group='oci')
        self.assertTLSRefused()

    def test_refused_with_another_ca(self):
        other = os.path.join(self.tmp, 'other')
        os.mkdir(other)
        self.config(verify_ca=tls.make_test_ca(other).ca_cert, group='oci')
        self.assertTLSRefused()

    def test_no_downgrade_to_http_on_a_bad_certificate(self):
        # A registry that speaks TLS with a certificate that fails
        # verification is not one that "does not speak HTTPS".
        self.config(verify_ca='True', permit_fallback_to_http_transport=True,
                    group='oci')
        self.assertTLSRefused()

    def test_insecure(self):
        self.config(verify_ca='False', group='oci')
        self.assertDownloads(self.href, common.QCOW2)
