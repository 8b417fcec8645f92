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

"""Tests of checksum parsing, verification and file checksums."""

import hashlib
import os

from ironic_images import exception
from ironic_images.tests import base
from ironic_images.transfer import checksums

DATA = b'ironic-images checksum test data\n' * 1000
SHA256 = hashlib.sha256(DATA).hexdigest()
SHA512 = hashlib.sha512(DATA).hexdigest()
SHA1 = hashlib.sha1(DATA).hexdigest()
MD5 = hashlib.md5(DATA).hexdigest()
HREF = 'file:///images/x.img'


class ParseChecksumTestCase(base.TestCase):

    def test_algo_value(self):
        result = checksums.parse_checksum('sha256:' + SHA256)
        self.assertEqual(('sha256', SHA256), tuple(result))
        self.assertEqual('sha256', result.algorithm)
        self.assertEqual(SHA256, result.value)
        self.assertEqual('sha256:' + SHA256, str(result))

    def test_every_supported_algorithm_named(self):
        for algo in ('sha1', 'sha224', 'sha256', 'sha384', 'sha512'):
            value = hashlib.new(algo, DATA).hexdigest()
            result = checksums.parse_checksum('%s:%s' % (algo, value))
            self.assertEqual((algo, value), tuple(result))

    def test_bare_sha256(self):
        self.assertEqual(('sha256', SHA256),
                         tuple(checksums.parse_checksum(SHA256)))

    def test_bare_sha512(self):
        self.assertEqual(('sha512', SHA512),
                         tuple(checksums.parse_checksum(SHA512)))

    def test_uppercase_accepted_and_lowered(self):
        self.assertEqual(('sha256', SHA256),
                         tuple(checksums.parse_checksum(SHA256.upper())))
        self.assertEqual(
            ('sha512', SHA512),
            tuple(checksums.parse_checksum('SHA512:' + SHA512.upper())))

    def test_whitespace_stripped(self):
        self.assertEqual(
            ('sha256', SHA256),
            tuple(checksums.parse_checksum(' sha256:%s\n' % SHA256)))

    def test_bare_md5_refused_by_default(self):
        exc = self.assertRaises(exception.ImageChecksumAlgorithmFailure,
                                checksums.parse_checksum, MD5,
                                image_href=HREF)
        self.assertIn('allow_md5_checksum', str(exc))
        self.assertIn(HREF, str(exc))

    def test_named_md5_refused_by_default(self):
        self.assertRaises(exception.ImageChecksumAlgorithmFailure,
                          checksums.parse_checksum, 'md5:' + MD5)
        self.assertRaises(exception.ImageChecksumAlgorithmFailure,
                          checksums.parse_checksum, MD5,
                          checksum_algo='md5')

    def test_md5_allowed_by_option(self):
        self.config(allow_md5_checksum=True)
        self.assertEqual(('md5', MD5),
                         tuple(checksums.parse_checksum(MD5)))
        self.assertEqual(('md5', MD5),
                         tuple(checksums.parse_checksum('md5:' + MD5)))

    def test_non_hex(self):
        exc = self.assertRaises(exception.InvalidChecksum,
                                checksums.parse_checksum, 'z' * 64,
                                image_href=HREF)
        self.assertIn('not hexadecimal', str(exc))
        self.assertIn(HREF, str(exc))
        self.assertRaises(exception.InvalidChecksum,
                          checksums.parse_checksum,
                          'sha256:' + SHA256[:-1] + 'g')
        self.assertRaises(exception.InvalidChecksum,
                          checksums.parse_checksum,
                          SHA256[:30] + ' ' + SHA256[31:])

    def test_empty(self):
        self.assertRaises(exception.InvalidChecksum,
                          checksums.parse_checksum, '')
        self.assertRaises(exception.InvalidChecksum,
                          checksums.parse_checksum, 'sha256:')

    def test_bare_wrong_length(self):
        for value in (SHA256[:-1], SHA256 + 'a', SHA1, 'ab'):
            exc = self.assertRaises(exception.InvalidChecksum,
                                    checksums.parse_checksum, value)
            self.assertIn('32, 64 or 128', str(exc))

    def test_named_wrong_length(self):
        exc = self.assertRaises(exception.InvalidChecksum,
                                checksums.parse_checksum,
                                'sha512:' + SHA256)
        self.assertIn('sha512 value has 128 hex digits', str(exc))

    def test_unknown_algorithm(self):
        exc = self.assertRaises(exception.ImageChecksumAlgorithmFailure,
                                checksums.parse_checksum,
                                'sha3_256:' + SHA256, image_href=HREF)
        self.assertIn('sha3_256', str(exc))
        self.assertIn('sha256', str(exc))
        self.assertRaises(exception.ImageChecksumAlgorithmFailure,
                          checksums.parse_checksum, SHA256,
                          checksum_algo='crc32')

    def test_checksum_algo_for_bare_value(self):
        self.assertEqual(('sha1', SHA1),
                         tuple(checksums.parse_checksum(
                             SHA1, checksum_algo='sha1')))
        self.assertEqual(('sha256', SHA256),
                         tuple(checksums.parse_checksum(
                             SHA256, checksum_algo='SHA256')))

    def test_checksum_algo_wrong_length(self):
        exc = self.assertRaises(exception.InvalidChecksum,
                                checksums.parse_checksum, SHA256,
                                checksum_algo='sha1')
        self.assertIn('40', str(exc))

    def test_conflicting_checksum_algo(self):
        exc = self.assertRaises(exception.InvalidChecksum,
                                checksums.parse_checksum,
                                'sha256:' + SHA256, checksum_algo='sha512')
        self.assertIn('sha256', str(exc))
        self.assertIn('sha512', str(exc))

    def test_agreeing_checksum_algo(self):
        self.assertEqual(('sha256', SHA256),
                         tuple(checksums.parse_checksum(
                             'sha256:' + SHA256, checksum_algo='sha256')))


class ChecksumTestCase(base.TestCase):

    def test_new_hasher(self):
        checksum = checksums.parse_checksum(SHA512)
        hasher = checksum.new_hasher()
        hasher.update(DATA)
        self.assertEqual(SHA512, hasher.hexdigest())

    def test_matches(self):
        checksum = checksums.parse_checksum(SHA256)
        self.assertTrue(checksum.matches(SHA256))
        self.assertTrue(checksum.matches(SHA256.upper()))
        self.assertFalse(checksum.matches(hashlib.sha256(b'x').hexdigest()))

    def test_verify_ok(self):
        checksum = checksums.parse_checksum(SHA256)
        self.assertIsNone(checksum.verify(SHA256.upper(), HREF))

    def test_verify_mismatch(self):
        checksum = checksums.parse_checksum(SHA256)
        wrong = hashlib.sha256(b'other').hexdigest()
        exc = self.assertRaises(exception.ImageChecksumError,
                                checksum.verify, wrong.upper(), HREF)
        self.assertIsInstance(exc, exception.ImageDownloadFailed)
        self.assertIn(SHA256, str(exc))
        self.assertIn(wrong, str(exc))
        self.assertIn('sha256', str(exc))
        self.assertIn(HREF, str(exc))
        self.assertEqual(wrong, exc.kwargs['actual'])


class ComputeFileChecksumTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.images_dir, 'x.img')
        with open(self.path, 'wb') as f:
            f.write(DATA)

    def test_default_sha256(self):
        self.assertEqual(SHA256,
                         checksums.compute_file_checksum(self.path))

    def test_other_algorithm(self):
        self.assertEqual(SHA512, checksums.compute_file_checksum(
            self.path, 'sha512'))
        self.assertEqual(SHA1, checksums.compute_file_checksum(
            self.path, 'sha1'))

    def test_empty_file(self):
        empty = os.path.join(self.images_dir, 'empty')
        open(empty, 'wb').close()
        self.assertEqual(hashlib.sha256(b'').hexdigest(),
                         checksums.compute_file_checksum(empty))

    def test_md5_refused_unless_allowed(self):
        self.assertRaises(exception.ImageChecksumAlgorithmFailure,
                          checksums.compute_file_checksum,
                          self.path, 'md5')
        self.config(allow_md5_checksum=True)
        self.assertEqual(MD5, checksums.compute_file_checksum(
            self.path, 'md5'))

    def test_unknown_algorithm(self):
        self.assertRaises(exception.ImageChecksumAlgorithmFailure,
                          checksums.compute_file_checksum,
                          self.path, 'whirlpool')

    def test_missing_file(self):
        missing = os.path.join(self.images_dir, 'missing')
        exc = self.assertRaises(exception.ImageDownloadFailed,
                                checksums.compute_file_checksum,
                                missing)
        self.assertIn(missing, str(exc))
        self.assertIn('No such file', str(exc))
