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

"""Fuzzing the HTTP headers a server controls.

Content-Range, Last-Modified, Retry-After and Www-Authenticate: parsed
alone, and end to end (a resumed download whose answers carry fuzzed
headers; a registry whose challenge is fuzzed). Property: a valid result
or one of our exceptions, never a wrong file, never a hang.
"""

import datetime
import hashlib
import io
import math

from hypothesis import given
from hypothesis import strategies as st

from ironic_images import exception
from ironic_images.image_service.oci import auth as oci_auth
from ironic_images.tests.reliability import base
from ironic_images.transfer import file_writer
from ironic_images.transfer import http_client
from ironic_images.transfer import pipeline
from ironic_images.transfer import resumable

HREF = 'http://127.0.0.1:9/disk.img'
# Header values a server can send: no CR or LF.
header_text = st.text(st.characters(codec='latin-1',
                                    exclude_characters='\r\n'),
                      max_size=60)
number = st.integers(-5, 2 ** 70).map(str) | st.sampled_from(
    ['', '*', '-0', '00', '1e3', '0x10', ' 7', '\u0661'])
content_range = st.one_of(
    st.builds('bytes {}-{}/{}'.format, number, number, number),
    st.builds('{} {}-{}/{}'.format, st.sampled_from(
        ['bytes', 'BYTES', 'items', ' bytes ', '']), number, number, number),
    header_text)
http_date = st.one_of(
    st.datetimes(min_value=datetime.datetime(1, 1, 1)).map(
        lambda when: when.strftime('%a, %d %b %Y %H:%M:%S GMT')),
    st.builds('{}, {} {} {} {}:{}:{} {}'.format,
              st.sampled_from(['Mon', 'Sun', 'Xyz', '']),
              st.integers(-1, 99), st.sampled_from(['Jan', 'Feb', 'Foo']),
              st.integers(-10, 100000), st.integers(-1, 99),
              st.integers(-1, 99), st.integers(-1, 99),
              st.sampled_from(['GMT', 'UTC', '+0100', '-2359', '+9999', ''])),
    header_text)
retry_after = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(['nan', 'NaN', 'inf', '-inf', '1e400', '-0', ' 1 ',
                     '1_0', '\u0661']),
    http_date)
challenge = st.one_of(
    st.builds('{} {}'.format, st.sampled_from(
        ['Bearer', 'bearer', 'Basic', 'Negotiate', '', 'Bearer,']),
        st.lists(st.builds('{}={}'.format, st.sampled_from(
            ['realm', 'service', 'scope', 'error', 'REALM', '', 'a b']),
            st.one_of(header_text, header_text.map('"{}"'.format))),
            max_size=5).map(','.join)),
    header_text)


class _Headers(dict):
    """Case-insensitive enough for the few names these tests use."""

    def get(self, name, default=None):
        for key, value in self.items():
            if key.lower() == name.lower():
                return value
        return default

    def __getitem__(self, name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value


class _Raw:

    def __init__(self, body, fail_after=None):
        self._fp = _Body(body, fail_after)


class _Body(io.BytesIO):
    """A body that breaks (as a dropped connection) after some bytes."""

    def __init__(self, body, fail_after):
        super().__init__(body)
        self._fail_after = fail_after

    def readinto(self, buffer):
        if self._fail_after is not None and self.tell() >= self._fail_after:
            raise ConnectionResetError('dropped (test)')
        if self._fail_after is not None:
            buffer = memoryview(buffer)[:self._fail_after - self.tell()]
        return super().readinto(buffer)


class FakeResponse:

    def __init__(self, status, headers, body=b'', fail_after=None):
        self.status_code = status
        self.headers = _Headers(headers)
        if body is not None and 'Content-Length' not in self.headers:
            self.headers['Content-Length'] = str(len(body))
        self.raw = _Raw(body or b'', fail_after)
        self.closed = False

    def close(self):
        self.closed = True


class TestHeaderParsers(base.ReliabilityTestCase):

    @given(content_range)
    def test_content_range(self, value):
        with base.bounded():
            parsed = resumable.parse_content_range(value)
        if parsed is not None:
            first, last, total = parsed
            self.assertLessEqual(0, first)
            self.assertLessEqual(first, last)
            self.assertTrue(total is None or last < total)

    @given(http_date)
    def test_last_modified(self, value):
        with base.bounded():
            parsed = http_client.parse_http_date(value)
        if parsed is not None:
            self.assertIsInstance(parsed, datetime.datetime)
            self.assertIsNone(parsed.tzinfo)

    @given(retry_after, st.integers(1, 10))
    def test_retry_after_is_a_sleepable_delay(self, value, attempt):
        response = FakeResponse(429, {'Retry-After': value})
        with base.bounded():
            asked = http_client.retry_after(response)
            delay = http_client.backoff(attempt, response)
        self.assertTrue(asked is None
                        or 0 <= asked <= http_client.MAX_RETRY_AFTER,
                        asked)
        self.assertTrue(math.isfinite(delay) and delay >= 0, delay)

    @given(challenge)
    def test_www_authenticate(self, value):
        with base.bounded():
            scheme, params = oci_auth.parse_challenge(value)
        self.assertTrue(scheme is None or scheme == scheme.lower())
        self.assertIsInstance(params, dict)
        for key, item in params.items():
            self.assertEqual(key.lower(), key)
            self.assertIsInstance(item, str)


V1 = bytes(range(256)) * 40
V2 = bytes(reversed(range(256))) * 39
VERSIONS = {'"v1"': V1, '"v2"': V2}


@st.composite
def resume_answer(draw, offset):
    """A server's answer to a resume at ``offset``, headers fuzzed."""
    status = draw(st.sampled_from([200, 206, 206, 206, 416, 503, 404]))
    etag = draw(st.sampled_from(['"v1"', '"v2"', None, 'W/"v1"']))
    body = VERSIONS.get(etag, V1)
    headers = {}
    if etag:
        headers['ETag'] = etag
    if draw(st.booleans()):
        headers['Last-Modified'] = draw(http_date)
    if status == 206:
        honest = 'bytes %d-%d/%d' % (offset, len(body) - 1, len(body))
        headers['Content-Range'] = draw(st.just(honest) | content_range)
        parsed = resumable.parse_content_range(headers['Content-Range'])
        first = parsed[0] if parsed else offset
        body = body[first:]
    elif status != 200:
        body = b''
    fail_after = draw(st.none() | st.integers(0, len(body)))
    return FakeResponse(status, headers, body, fail_after)


class TestResumeWithFuzzedAnswers(base.ReliabilityTestCase):
    """A dropped download resumed against answers with fuzzed headers."""

    @given(st.data(), st.integers(1, len(V1) - 1))
    def test_resume(self, data, offset):
        first = FakeResponse(200, {'ETag': '"v1"'}, V1, fail_after=offset)
        answers = []

        def reopen(headers):
            answer = data.draw(resume_answer(
                int(headers['Range'][6:-1]) if 'Range' in headers else 0))
            answers.append(answer)
            return answer

        sink = io.BytesIO()
        hasher = pipeline.Hasher('sha256')
        source = resumable.ResumableResponse(first, reopen, HREF, retries=3)
        try:
            with base.bounded():
                pipeline.stream(source, [hasher, file_writer.FileWriter(sink)],
                                HREF, expected_size=source.total,
                                chunk_size=4096)
        except exception.IronicImagesException:
            return
        written = sink.getvalue()
        # Whole versions only: never a splice of two.
        self.assertIn(hashlib.sha256(written).hexdigest(),
                      [hashlib.sha256(v).hexdigest() for v in (V1, V2)])
        self.assertEqual(hashlib.sha256(written).hexdigest(),
                         hasher.hexdigest())
