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

"""Fuzzing checksum values and checksum files.

Property: a :class:`~ironic_images.checksum_utils.Checksum` whose value is
lower-case hex of the algorithm's length, or one of our exceptions; never
anything else, never a hang.
"""

import hashlib
import string

from hypothesis import given
from hypothesis import strategies as st

from ironic_images import exception
from ironic_images.image_service import checksum_files
from ironic_images.tests.reliability import base
from ironic_images.transfer import checksums

ALGORITHMS = list(checksums.SUPPORTED_ALGORITHMS) + [
    'sha2-256', 'SHA256', 'blake2b', 'crc32', '', 'md5 ', 'sha3_256']
HREF = 'http://127.0.0.1:9/images/disk.img'

hex_text = st.text(alphabet=string.hexdigits, max_size=140)
algorithm = st.sampled_from(ALGORITHMS) | st.text(max_size=12)
checksum_value = st.one_of(
    hex_text,
    st.builds('{}:{}'.format, algorithm, hex_text),
    st.sampled_from(['sha256:' + 'a' * 64, 'SHA512:' + 'F' * 128,
                     'md5:' + '0' * 32, ' sha256 : ' + 'b' * 64 + ' ']),
    st.text(max_size=200))
file_name = st.sampled_from(['disk.img', './disk.img', '*disk.img',
                             'sub/disk.img', 'disk.img ', 'other.img']) | \
    st.text(max_size=30)


def checksum_line(draw_algo, value, name, bsd):
    if bsd:
        return '%s (%s) = %s' % (draw_algo, name, value)
    return '%s  %s' % (value, name)


checksum_file = st.lists(
    st.one_of(
        st.builds(checksum_line, algorithm, hex_text, file_name,
                  st.booleans()),
        st.sampled_from(['', '# comment', '   ', '\r', '\x00', '\u2028']),
        st.text(max_size=80)),
    max_size=12).map('\n'.join)


class TestChecksumFuzz(base.ReliabilityTestCase):

    def assertValid(self, result):
        self.assertIsInstance(result, checksums.Checksum)
        self.assertIn(result.algorithm, checksums.SUPPORTED_ALGORITHMS)
        self.assertEqual(hashlib.new(result.algorithm).digest_size * 2,
                         len(result.value))
        self.assertTrue(set(result.value) <= set('0123456789abcdef'),
                        result.value)

    def check(self, function, *args, **kwargs):
        try:
            with base.bounded():
                result = function(*args, **kwargs)
        except exception.IronicImagesException:
            return None
        self.assertValid(result)
        return result

    @given(checksum_value, st.none() | algorithm, st.booleans())
    def test_parse_checksum(self, value, algo, allow_md5):
        self.config(allow_md5_checksum=allow_md5)
        result = self.check(checksums.parse_checksum, value, algo,
                            HREF)
        if result is not None and not allow_md5:
            self.assertNotEqual('md5', result.algorithm)

    @given(checksum_value, st.none() | algorithm)
    def test_resolve_checksum_without_urls(self, value, algo):
        if checksums.is_checksum_url(value):
            return
        if not value:
            self.assertIsNone(checksum_files.resolve_checksum(value, algo,
                                                              HREF))
            return
        self.check(checksum_files.resolve_checksum, value, algo, HREF)

    @given(checksum_file, st.none() | algorithm,
           st.sampled_from([HREF, 'file:///x/disk.img',
                            'http://h/a%20b/disk.img?x=1#f', 'oci://h/r']))
    def test_parse_checksum_file(self, text, algo, href):
        self.config(allow_md5_checksum=True)
        self.check(checksums.parse_checksum_file, text, href, algo)

    @given(st.lists(st.builds(checksum_line, st.sampled_from(
        ['SHA256', 'SHA512', 'MD5', 'sha256']), hex_text, file_name,
        st.booleans()), max_size=5), st.integers(0, 5))
    def test_line_of_the_image_is_found(self, lines, position):
        # A valid line for disk.img, anywhere among others, is the answer
        # unless an earlier line names disk.img too.
        data = b'x'
        digest = hashlib.sha256(data).hexdigest()
        lines = [line for line in lines if 'disk.img' not in line]
        lines.insert(min(position, len(lines)), '%s  disk.img' % digest)
        result = checksums.parse_checksum_file('\n'.join(lines), HREF)
        self.assertEqual(('sha256', digest), tuple(result))
