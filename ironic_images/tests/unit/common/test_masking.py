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

"""Tests of secret masking in hrefs and free text."""

from ironic_images.common import masking
from ironic_images.tests import base


class MaskHrefTestCase(base.TestCase):

    def test_plain_href_unchanged(self):
        for href in ('https://h.example.com/a/b.qcow2',
                     'https://h.example.com/a/b.qcow2?version=3&arch=x86',
                     'file:///var/lib/ironic/images/x.img',
                     'oci://quay.io/org/image:tag',
                     'not a url at all'):
            self.assertEqual(href, masking.mask_href(href))

    def test_userinfo_password(self):
        self.assertEqual('https://alice:***@h.example.com:8443/x.img',
                         masking.mask_href(
                             'https://alice:s3cr3t@h.example.com:8443/x.img'))

    def test_password_with_at_sign(self):
        masked = masking.mask_href('https://bob:p@ss@h.example.com/x')
        self.assertNotIn('p@ss', masked)
        self.assertEqual('https://bob:***@h.example.com/x', masked)

    def test_temp_url_sig(self):
        masked = masking.mask_href(
            'https://s/v1/AUTH_a/c/o?temp_url_sig=c0ffee&temp_url_expires=9')
        self.assertEqual(
            'https://s/v1/AUTH_a/c/o?temp_url_sig=***&temp_url_expires=9',
            masked)

    def test_s3_presigned(self):
        masked = masking.mask_href(
            'https://b.s3.amazonaws.com/x?X-Amz-Credential=AKIA1&'
            'X-Amz-Signature=f00d&X-Amz-Expires=60')
        self.assertNotIn('AKIA1', masked)
        self.assertNotIn('f00d', masked)
        self.assertIn('X-Amz-Expires=60', masked)

    def test_token_keeps_other_parameters(self):
        masked = masking.mask_href(
            'https://h/x.img?token=tok3n&format=raw')
        self.assertNotIn('tok3n', masked)
        self.assertEqual('https://h/x.img?token=***&format=raw', masked)

    def test_other_parameters_kept_verbatim(self):
        # Only the secret value changes; the rest of the query is not
        # decoded and re-joined (a=1%26b is one parameter, not two).
        masked = masking.mask_href('https://h/x?a=1%26b&sig=abc')
        self.assertEqual('https://h/x?a=1%26b&sig=***', masked)


class MaskTextTestCase(base.TestCase):

    def test_url_in_text(self):
        text = masking.mask_text(
            'GET https://u:pw1@h/x?sig=abc failed with 403')
        self.assertEqual('GET https://u:***@h/x?sig=*** failed with 403',
                         text)

    def test_key_value_secret(self):
        text = masking.mask_text('login with password=hunter2 refused')
        self.assertNotIn('hunter2', text)

    def test_several_urls(self):
        text = masking.mask_text('a https://u:pw1@h/x b https://v:pw2@g/y c')
        self.assertNotIn('pw1', text)
        self.assertNotIn('pw2', text)
        self.assertTrue(text.startswith('a https://u:***@h/x b '))
        self.assertTrue(text.endswith(' c'))

    def test_punctuation_after_masked_url_kept(self):
        for sep in (',', ';', ':', '.', ')'):
            text = masking.mask_text(
                '(image https://h/x?sig=abc%s reason: boom' % sep)
            self.assertEqual('(image https://h/x?sig=***%s reason: boom'
                             % sep, text)

    def test_punctuation_after_token_url_kept(self):
        text = masking.mask_text('image https://h/x?token=abc, reason: boom')
        self.assertEqual('image https://h/x?token=***, reason: boom', text)

    def test_non_string(self):
        self.assertEqual('42', masking.mask_text(42))
