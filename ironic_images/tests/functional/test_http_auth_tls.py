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

"""HTTP Basic auth (nginx auth_basic, redirects) and TLS with a test CA."""

import os

import fixtures
import requests

from ironic_images import exception
from ironic_images.image_service import http
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.functional.servers import tls
from ironic_images.tests.functional import test_http_service as common


class TestBasicAuth(common.HttpTestCase):

    def setUp(self):
        super().setUp()
        self.put('disk.img')
        self.put('SUMS', ('%s  disk.img\n' % common.IMAGE_SHA256).encode())
        htpasswd = nginx.make_htpasswd(os.path.join(self.tmp, 'htpasswd'),
                                       'user', 'secret')
        self.server = self.nginx(htpasswd=htpasswd)
        self.url = self.server.url_for('disk.img')

    def use_basic(self, user='user', password='secret'):
        self.config(auth_strategy='http_basic', user=user, password=password,
                    group='http')

    def test_right_credentials(self):
        self.use_basic()
        service = http.HttpImageService()
        self.assertEqual(len(common.IMAGE), service.show(self.url)['size'])
        self.assertDownloads(self.url, service=service,
                             checksum=self.server.url_for('SUMS'))
        log = self.server.requests_log(count=3)
        self.assertEqual([('HEAD', '/disk.img', 200), ('GET', '/SUMS', 200),
                          ('GET', '/disk.img', 200)],
                         [(e['method'], e['uri'], e['status']) for e in log])
        self.assertTrue(all(e['authorization'] for e in log))

    def test_wrong_password(self):
        self.use_basic(password='wrong')
        error = self.assertRaises(
            exception.ImageServiceAuthenticationRequired,
            http.HttpImageService().validate_href, self.url)
        self.assertNotIn('wrong', str(error))
        self.assertDownloadFails(exception.ImageServiceAuthenticationRequired,
                                 self.url)
        self.assertEqual([401, 401], [e['status'] for e in
                                      self.server.requests_log(count=2)])

    def test_no_credentials(self):
        self.assertRaises(exception.ImageServiceAuthenticationRequired,
                          http.HttpImageService().validate_href, self.url)
        self.assertDownloadFails(exception.ImageServiceAuthenticationRequired,
                                 self.url)

    def test_missing_password(self):
        self.use_basic(password=None)
        self.assertRaises(exception.ImageRefValidationFailed,
                          http.HttpImageService().validate_href, self.url)
        self.assertDownloadFails(exception.ImageRefValidationFailed,
                                 self.url)
        # Nothing was sent.
        self.assertEqual([], self.server.requests_log())


class TestCredentialsAndRedirects(common.HttpTestCase):
    """Credentials go to the href's host only."""

    def setUp(self):
        super().setUp()
        self.config(auth_strategy='http_basic', user='user',
                    password='secret', group='http')
        self.origin = self.fault_server()
        self.other = self.fault_server()
        self.other.add('/disk.img', body=common.IMAGE)
        self.origin.add('/disk.img', body=common.IMAGE)
        # The same loopback address, named differently: another host.
        self.other_url = 'http://localhost:%d/disk.img' % self.other.port
        self.origin.script('/away.img',
                           [faults.redirect(self.other_url, 302)] * 5)
        self.origin.script('/here.img', [faults.redirect('/disk.img', 307)])

    @staticmethod
    def authorizations(server, path):
        return [r.header('authorization') for r in
                server.requests_for(path)]

    def test_cross_host_redirect_drops_credentials(self):
        url = self.origin.url_for('/away.img')
        info = http.HttpImageService().show(url)
        self.assertEqual(self.other_url, info['properties']['url'])
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)
        sent = self.authorizations(self.origin, '/away.img')
        self.assertEqual(2, len(sent))
        self.assertTrue(all(a and a.startswith('Basic ') for a in sent))
        self.assertEqual([None, None],
                         self.authorizations(self.other, '/disk.img'))

    def test_cross_host_redirect_on_resume(self):
        self.other.script('/disk.img', [faults.cut(300000)], method='GET')
        self.assertDownloads(self.origin.url_for('/away.img'),
                             checksum=common.IMAGE_SHA256)
        seen = [(r.header('range'), r.header('authorization'))
                for r in self.other.requests_for('/disk.img')]
        self.assertEqual([(None, None), ('bytes=300000-', None)], seen)
        self.assertEqual(
            2, len([a for a in self.authorizations(self.origin, '/away.img')
                    if a]))

    def test_same_host_redirect_keeps_credentials(self):
        self.assertDownloads(self.origin.url_for('/here.img'),
                             checksum=common.IMAGE_SHA256)
        sent = (self.authorizations(self.origin, '/here.img')
                + self.authorizations(self.origin, '/disk.img'))
        self.assertEqual(2, len(sent))
        self.assertEqual(1, len(set(sent)))
        self.assertTrue(sent[0].startswith('Basic '))


class TestTLS(common.HttpTestCase):

    def setUp(self):
        super().setUp()
        self.put('disk.img')
        self.ca = tls.make_test_ca(self.tmp)
        self.system_bundle = requests.certs.where()
        # What this environment exports: it must not decide.
        for name in ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE'):
            self.useFixture(fixtures.EnvironmentVariable(
                name, self.system_bundle))

    def nginx_tls(self, **kwargs):
        return self.nginx(tls_cert=self.ca.cert, tls_key=self.ca.key,
                          **kwargs)

    def test_test_ca_trusted(self):
        server = self.nginx_tls()
        url = server.url_for('disk.img')
        self.assertTrue(url.startswith('https://'))
        self.config(webserver_verify_ca=self.ca.ca_cert)
        self.assertEqual(len(common.IMAGE),
                         http.HttpImageService().show(url)['size'])
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)

    def test_default_refuses_unknown_ca(self):
        url = self.nginx_tls().url_for('disk.img')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  http.HttpImageService().validate_href, url)
        self.assertIn('TLS failure', str(error))
        self.assertIn('CERTIFICATE_VERIFY_FAILED', str(error))
        error = self.assertDownloadFails(exception.ImageDownloadFailed, url)
        self.assertIn('CERTIFICATE_VERIFY_FAILED', str(error))

    def test_configured_bundle_wins_over_environment(self):
        # The environment trusts the test CA; the configured bundle does
        # not: the configuration decides.
        self.useFixture(fixtures.EnvironmentVariable('REQUESTS_CA_BUNDLE',
                                                     self.ca.ca_cert))
        self.config(webserver_verify_ca=self.system_bundle)
        url = self.nginx_tls().url_for('disk.img')
        self.assertDownloadFails(exception.ImageDownloadFailed, url)

    def test_verification_disabled(self):
        self.config(webserver_verify_ca='False')
        url = self.nginx_tls().url_for('disk.img')
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)

    def test_minimum_version(self):
        url = self.nginx_tls(locations='ssl_protocols TLSv1.2;').url_for(
            'disk.img')
        self.config(webserver_verify_ca=self.ca.ca_cert)
        self.assertDownloads(url)
        self.config(webserver_tls_minimum_version='1.3')
        error = self.assertDownloadFails(exception.ImageDownloadFailed, url,
                                         name='refused.img')
        self.assertIn('TLS failure', str(error))
