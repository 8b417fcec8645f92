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

"""The driver contract for the in-tree drivers, against real servers.

One class per driver mixes in :mod:`.driver_contract`'s tests: file://
(the allowed directory), http:// and https:// (nginx, https with a test
CA), oci:// (the distribution registry) and Glance (a real Glance). The
third-party driver's class is in :mod:`.test_thirdparty_driver`.
"""

import hashlib
import os
import uuid

import fixtures

from ironic_images import exception
from ironic_images.image_service import file as file_service
from ironic_images.image_service import glance as glance_service
from ironic_images.image_service import http as http_service
from ironic_images.image_service import oci as oci_service
from ironic_images.tests import base
from ironic_images.tests.functional import driver_contract
from ironic_images.tests.functional.servers import glance
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import registry
from ironic_images.tests.functional.servers import tls
from ironic_images.transfer import http_client


def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


class FileDriverContractTest(driver_contract.DriverContractTests,
                             base.TestCase):
    """file://: the images of ``[file]allowed_paths``."""

    driver_class = file_service.FileImageService
    # show() says no_cache: a local file is never copied into the cache.
    cacheable = False

    def publish(self, name, data):
        path = os.path.join(self.images_dir, name)
        _write(path, data)
        return 'file://' + path

    def missing_href(self):
        return 'file://' + os.path.join(self.images_dir, 'missing.img')


class HttpDriverContractTest(driver_contract.DriverContractTests,
                             driver_contract.RevalidatedSourceContractTests,
                             base.TestCase):
    """http://: nginx, revalidated by ETag and Last-Modified."""

    driver_class = http_service.HttpImageService

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatchObject(http_client, 'BACKOFF_BASE',
                                                 0.01))
        self.config(webserver_connection_timeout=5)
        self.server = self.useFixture(nginx.NginxFixture(
            self.images_dir, **self.nginx_options()))

    def nginx_options(self):
        return {}

    def publish(self, name, data):
        _write(os.path.join(self.images_dir, name), data)
        return self.server.url_for(name)

    def missing_href(self):
        return self.server.url_for('missing.img')


class HttpsDriverContractTest(HttpDriverContractTest):
    """https://: nginx with a certificate of a test CA."""

    def nginx_options(self):
        ca = tls.make_test_ca(self.tmp)
        self.config(webserver_verify_ca=ca.ca_cert)
        return {'tls_cert': ca.cert, 'tls_key': ca.key}

    def test_urls_are_https(self):
        self.assertTrue(self.publish('x.img', b'x').startswith('https://'))


class OciDriverContractTest(driver_contract.DriverContractTests,
                            driver_contract.ChangingSourceContractTests,
                            base.TestCase):
    """oci://: the distribution registry; a tag resolves to a digest."""

    driver_class = oci_service.OciImageService
    # The layer digest is verified instead of a given checksum.
    verifies_given_checksum = False
    has_updated_at = False
    immutable = True
    missing_error = exception.ImageNotFound

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatchObject(http_client, 'BACKOFF_BASE',
                                                 0.01))
        self.registry = self.useFixture(registry.RegistryFixture())
        self.config(permit_fallback_to_http_transport=True, group='oci')

    def verified_checksum(self, data, given):
        return driver_contract.sha256(data)

    def publish(self, name, data):
        repo = 'contract/' + name.lower()
        oci_push.push_artifact(self.registry, repo, 'v1', data, name)
        return self.registry.oci_url(repo, 'v1')

    def missing_href(self):
        return self.registry.oci_url('contract/missing', 'v1')


class GlanceDriverContractTest(driver_contract.DriverContractTests,
                               base.TestCase):
    """Glance: a real Glance without Keystone; image ids never change."""

    driver_class = glance_service.GlanceImageService
    immutable = True
    missing_error = exception.ImageNotFound

    def setUp(self):
        super().setUp()
        self.glance = self.useFixture(
            glance.GlanceFixture(share_with=type(self)))
        self.config(auth_type='none', endpoint_override=self.glance.url,
                    group='glance')

    def verified_checksum(self, data, given):
        # Glance's own multihash comes first; a given one is verified too.
        return 'sha512:' + hashlib.sha512(data).hexdigest()

    def publish(self, name, data, container_format='bare'):
        extension = os.path.splitext(name)[1]
        return self.glance.create_image(
            data, name=name, container_format=container_format,
            disk_format={'.img': 'raw'}.get(extension, extension[1:]))['id']

    def publish_hostile(self, name, data):
        # Glance inspects what it stores as "bare" and refuses a backing
        # file itself; it stores any other container format as it comes.
        return self.publish(name, data, container_format='ovf')

    def missing_href(self):
        return str(uuid.uuid4())
