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

"""Fuzzing hrefs of every scheme, and the masking of their secrets.

Each href goes through ``get_image_service(href).validate_href(href)``
(and ``show``): against a FaultServer on loopback for http(s):// and
oci://, against a private directory for file://. Property: a valid result
or one of our exceptions, never anything else, never a hang; a file://
result is always under ``[file]allowed_paths``; no secret of an href
survives :func:`~ironic_images.common.masking.mask_href` or an exception
message.
"""

import os
import string
import urllib.parse

import hypothesis
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ironic_images.common import masking
from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service import file as file_service
from ironic_images.image_service.oci import reference as oci_reference
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.reliability import base

URL_CHARS = string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%"
url_text = st.text(st.sampled_from(URL_CHARS), max_size=40)
any_text = st.text(max_size=40)
path_text = st.one_of(
    st.lists(st.sampled_from(['..', '.', 'disk.img', 'a', '%2e%2e', '%00',
                              '', 'link', 'dir', '~', '%2F', 'etc']),
             max_size=6).map('/'.join),
    url_text, any_text)
SCHEMES = ['http', 'https', 'HTTP', 'oci', 'file', 'glance', 'ftp', '',
           'swift', 'oci+http']
# A secret as a user may write it: long enough to be found in text.
secret = st.text(st.sampled_from(string.ascii_letters + string.digits
                                 + '!$*+-._~'), min_size=8, max_size=20)


def href(draw, host):
    scheme = draw(st.sampled_from(SCHEMES) | st.text(max_size=6))
    netloc = draw(st.sampled_from([host, host, '', 'localhost:1',
                                   '[::1]:1', 'registry.example.com',
                                   'u:p@' + host]) | url_text)
    path = draw(path_text)
    if path and not path.startswith('/') and draw(st.booleans()):
        path = '/' + path
    suffix = draw(st.sampled_from(['', ':v1', ':latest', '@sha256:' + 'a' * 64,
                                   '@sha512:' + 'b' * 128, '@md5:0', '?x=1',
                                   '#frag']) | url_text)
    return '%s://%s%s%s' % (scheme, netloc, path, suffix)


class TestHrefFuzz(base.ReliabilityTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(faults.FaultServerFixture())
        self.server.add('/disk.img', body=b'x' * 1000)
        self.host = '127.0.0.1:%d' % self.server.port
        self.config(permit_fallback_to_http_transport=True, group='oci')
        os.symlink('/etc', os.path.join(self.images_dir, 'link'))
        os.mkdir(os.path.join(self.images_dir, 'dir'))
        with open(os.path.join(self.images_dir, 'disk.img'), 'wb') as f:
            f.write(b'y' * 100)

    def call(self, function, *args):
        try:
            with base.bounded():
                return function(*args)
        except exception.IronicImagesException as error:
            # Every message is a plain one-line-able string.
            self.assertIsInstance(str(error), str)
            return None

    @given(st.data())
    def test_any_href(self, data):
        value = data.draw(st.one_of(
            st.builds(href, st.just(data.draw), st.just(self.host)),
            any_text, st.uuids().map(str)))
        service = self.call(image_service.get_image_service, value)
        if service is None:
            return
        result = self.call(service.validate_href, value)
        if result is not None:
            self.call(service.show, value)

    @given(path_text)
    @settings(max_examples=300)
    def test_file_paths_stay_allowed(self, path):
        value = 'file://' + urllib.parse.quote(self.images_dir) + '/' + path
        service = file_service.FileImageService()
        resolved = self.call(service.validate_href, value)
        if resolved is not None:
            real = os.path.realpath(self.images_dir)
            self.assertEqual(real, os.path.commonpath([resolved, real]))
            self.assertTrue(os.path.isfile(resolved))

    @given(st.data())
    def test_oci_references(self, data):
        value = data.draw(st.builds(href, st.just(data.draw),
                                    st.just(self.host)))
        if not value.lower().startswith('oci://'):
            value = 'oci://' + value.partition('://')[2]
        ref = self.call(oci_reference.parse_reference, value)
        if ref is None:
            return
        self.assertTrue(ref.host and ref.repository)
        self.assertTrue(ref.tag or ref.digest)
        self.assertEqual(ref, oci_reference.parse_reference(ref.url()))

    @given(secret, secret, st.sampled_from(
        ['token', 'X-Amz-Signature', 'temp_url_sig', 'password', 'sig',
         'access_token', 'X-Goog-Credential', 'api_key']),
        st.sampled_from(['http', 'https', 'oci', 'swift', 'file']),
        path_text)
    def test_secrets_are_masked(self, password, query_secret, key, scheme,
                                path):
        hypothesis.assume(password not in path and query_secret not in path
                          and password not in query_secret + self.host)
        value = '%s://user:%s@%s/%s?a=1&%s=%s&b=2' % (
            scheme, password, self.host, path.lstrip('/'), key, query_secret)
        for text in (masking.mask_href(value),
                     masking.mask_text('failed: %s, giving up' % value),
                     str(exception.ImageDownloadFailed(image_href=value,
                                                       reason='x'))):
            self.assertNotIn(password, text)
            self.assertNotIn(query_secret, text)

    def test_get_image_service_of_a_malformed_url(self):
        for value in ('http://[', 'oci://[]/x', 'https://[::1/x'):
            self.assertRaises(exception.UnknownImageService,
                              image_service.get_image_service, value)
