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

from unittest import mock

from ironic_images import checksum_utils
from ironic_images import exception
from ironic_images.image_service import checksum_files
from ironic_images.tests import base

SHA256 = 'a' * 64
SHA512 = 'b' * 128
HREF = 'https://example.com/images/disk.qcow2'


class ParseChecksumFileTestCase(base.TestCase):

    def _parse(self, text, href=HREF, algo=None):
        return checksum_utils.parse_checksum_file(text, href, algo)

    def test_gnu_text_mode(self):
        text = '%s  other.img\n%s  disk.qcow2\n' % ('c' * 64, SHA256)
        self.assertEqual(('sha256', SHA256), self._parse(text))

    def test_gnu_binary_mode_and_path(self):
        text = '%s *./dir/disk.qcow2\n' % SHA512.upper()
        self.assertEqual(('sha512', SHA512), self._parse(text))

    def test_bsd(self):
        text = ('SHA256 (other.img) = %s\n'
                'SHA512 (disk.qcow2) = %s\n' % ('c' * 64, SHA512))
        self.assertEqual(('sha512', SHA512), self._parse(text))

    def test_single_value_with_comments(self):
        text = '# made by hand\n\n%s\n' % SHA256
        self.assertEqual(('sha256', SHA256), self._parse(text))

    def test_name_is_unquoted_from_href(self):
        text = '%s  my disk.qcow2\n' % SHA256
        self.assertEqual(
            ('sha256', SHA256),
            self._parse(text, href='https://h/i/my%20disk.qcow2'))

    def test_explicit_algorithm_for_gnu_values(self):
        text = '%s  disk.qcow2\n' % ('d' * 96)
        self.assertEqual(('sha384', 'd' * 96),
                         self._parse(text, algo='sha384'))

    def test_no_matching_name_lists_names(self):
        text = '%s  one.img\nSHA256 (two.img) = %s\n' % (SHA256, SHA256)
        error = self.assertRaises(exception.InvalidChecksum, self._parse,
                                  text)
        self.assertIn('disk.qcow2', str(error))
        self.assertIn('one.img, two.img', str(error))

    def test_matching_line_with_bad_value(self):
        text = '%s  disk.qcow2\n' % ('z' * 64)
        self.assertRaises(exception.InvalidChecksum, self._parse, text)

    def test_empty_file(self):
        error = self.assertRaises(exception.InvalidChecksum, self._parse,
                                  '# nothing\n')
        self.assertIn('none', str(error))


class ResolveChecksumTestCase(base.TestCase):

    def test_none(self):
        self.assertIsNone(checksum_utils.resolve_checksum(None, None, HREF))

    def test_value(self):
        self.assertEqual(
            ('sha256', SHA256),
            checksum_utils.resolve_checksum('SHA256:' + SHA256, None, HREF))

    def test_is_checksum_url(self):
        self.assertTrue(checksum_utils.is_checksum_url('https://h/SUMS'))
        self.assertTrue(checksum_utils.is_checksum_url('file:///x/SUMS'))
        self.assertFalse(checksum_utils.is_checksum_url('sha256:' + SHA256))
        self.assertFalse(checksum_utils.is_checksum_url(SHA256))

    def test_url_is_fetched_and_searched(self):
        with mock.patch.object(checksum_files, 'fetch_checksum_file',
                               autospec=True) as fetch:
            fetch.return_value = '%s  disk.qcow2\n' % SHA256
            result = checksum_utils.resolve_checksum(
                'https://example.com/SHA256SUMS', None, HREF)
        fetch.assert_called_once_with('https://example.com/SHA256SUMS')
        self.assertEqual(('sha256', SHA256), result)

    def test_unsupported_scheme(self):
        self.assertRaises(exception.ImageChecksumURLNotSupported,
                          checksum_utils.fetch_checksum_file,
                          'ftp://example.com/SUMS')

    def test_file_url_goes_through_file_checks(self):
        self.assertRaises(exception.ImageRefValidationFailed,
                          checksum_utils.fetch_checksum_file,
                          'file:///etc/passwd')
