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

"""Redirects: 301/302/303/307/308, chains, loops, [http]max_redirects and
[http]allow_redirects, against nginx ``return`` locations."""

from ironic_images import exception
from ironic_images.image_service import http
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.functional import test_http_service as common


class TestRedirects(common.HttpTestCase):

    def setUp(self):
        super().setUp()
        self.put('disk.img')
        self.put('SUMS', ('%s  disk.img\n' % common.IMAGE_SHA256).encode())
        locations = [nginx.redirect_location('/r%d.img' % status,
                                             '/disk.img', status)
                     for status in (301, 302, 303, 307, 308)]
        locations += [
            nginx.redirect_location('/c1.img', '/c2.img', 301),
            nginx.redirect_location('/c2.img', '/c3.img', 307),
            nginx.redirect_location('/c3.img', '/disk.img', 308),
            nginx.redirect_location('/loop-a.img', '/loop-b.img', 302),
            nginx.redirect_location('/loop-b.img', '/loop-a.img', 302),
            nginx.redirect_location('/SUMS-moved', '/SUMS', 302),
        ]
        self.server = self.nginx(locations=''.join(locations))
        self.final = self.server.url_for('disk.img')

    def test_each_status_followed(self):
        for status in (301, 302, 303, 307, 308):
            url = self.server.url_for('r%d.img' % status)
            info = http.HttpImageService().show(url)
            self.assertEqual(self.final, info['properties']['url'])
            self.assertEqual(len(common.IMAGE), info['size'])
            self.assertDownloads(url, checksum=common.IMAGE_SHA256)

    def test_chain_within_max_redirects(self):
        self.config(max_redirects=3, group='http')
        url = self.server.url_for('c1.img')
        self.assertEqual(self.final, http.HttpImageService().show(url)[
            'properties']['url'])
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)
        self.assertEqual(['/c1.img', '/c2.img', '/c3.img', '/disk.img'],
                         [e['uri'] for e in self.server.requests_log()
                          if e['method'] == 'GET'][-4:])

    def test_checksum_file_behind_a_redirect(self):
        self.assertDownloads(self.final,
                             checksum=self.server.url_for('SUMS-moved'))

    def test_chain_longer_than_max_redirects(self):
        self.config(max_redirects=2, group='http')
        url = self.server.url_for('c1.img')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  http.HttpImageService().validate_href, url)
        self.assertIn('more than 2 redirects', str(error))
        self.assertDownloadFails(exception.ImageDownloadFailed, url)

    def test_loop(self):
        url = self.server.url_for('loop-a.img')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  http.HttpImageService().validate_href, url)
        self.assertIn('redirect loop', str(error))
        self.assertDownloadFails(exception.ImageDownloadFailed, url)

    def test_not_followed_when_disallowed(self):
        self.config(allow_redirects=False, group='http')
        url = self.server.url_for('c1.img')
        service = http.HttpImageService()
        error = self.assertRaises(exception.ImageRefIsARedirect,
                                  service.validate_href, url)
        self.assertEqual(self.server.url_for('c2.img'), error.redirect_url)
        self.assertRaises(exception.ImageRefIsARedirect, service.show, url)
        error = self.assertDownloadFails(exception.ImageRefIsARedirect, url)
        self.assertEqual(self.server.url_for('c2.img'), error.redirect_url)
        # The target itself is not requested.
        self.assertEqual({'/c1.img'},
                         {e['uri'] for e in self.server.requests_log(3)})
        # A URL that does not redirect works as usual.
        self.assertDownloads(self.final)
