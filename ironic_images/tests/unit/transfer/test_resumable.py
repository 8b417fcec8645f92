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

import hashlib
import io
from unittest import mock

import fixtures
import requests
import requests_mock.contrib.fixture

from ironic_images import exception
from ironic_images.tests import base
from ironic_images.transfer import pipeline
from ironic_images.transfer import resumable

URL = 'http://example.com/disk.img'
DATA = bytes(range(256)) * 40  # 10240 bytes
LAST_MODIFIED = 'Sun, 06 Nov 1994 08:49:37 GMT'


class DroppingBody(io.RawIOBase):
    """A body that breaks the connection after ``cut`` bytes."""

    def __init__(self, data, cut, error=ConnectionResetError):
        self._data = data
        self._cut = cut
        self._pos = 0
        self._error = error

    def readable(self):
        return True

    def readinto(self, buffer):
        if self._pos >= self._cut:
            raise self._error('dropped')
        count = min(len(buffer), self._cut - self._pos)
        buffer[:count] = self._data[self._pos:self._pos + count]
        self._pos += count
        return count


class ParseTestCase(base.TestCase):

    def test_parse_content_range(self):
        for value, expected in [
                ('bytes 0-0/1', (0, 0, 1)),
                ('bytes 100-199/1000', (100, 199, 1000)),
                ('  bytes   5-9/*  ', (5, 9, None)),
                ('bytes 0-999/1000', (0, 999, 1000)),
                (None, None),
                ('', None),
                ('bytes */1000', None),        # unsatisfied range
                ('bytes 10-5/1000', None),     # last before first
                ('bytes 0-1000/1000', None),   # last beyond the end
                ('bytes=0-10/100', None),
                ('items 0-1/2', None),
                ('bytes 0-1', None),
                ('bytes -1-5/10', None)]:
            self.assertEqual(expected, resumable.parse_content_range(value),
                             value)

    def test_validator(self):
        def response(**headers):
            return mock.Mock(headers=headers)
        self.assertEqual('"v1"', resumable.validator(response(
            ETag='"v1"', **{'Last-Modified': LAST_MODIFIED})))
        # A weak ETag cannot guard a Range request.
        self.assertEqual(LAST_MODIFIED, resumable.validator(response(
            ETag='W/"v1"', **{'Last-Modified': LAST_MODIFIED})))
        self.assertIsNone(resumable.validator(response(ETag='W/"v1"')))
        self.assertIsNone(resumable.validator(response()))

    def test_content_length(self):
        for value, expected in [('10', 10), ('0', 0), ('-1', None),
                                ('ten', None), (None, None)]:
            headers = {} if value is None else {'Content-Length': value}
            self.assertEqual(expected, resumable.content_length(
                mock.Mock(headers=headers)), value)


class ResumableTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.sleep = self.useFixture(
            fixtures.MockPatch(
                'ironic_images.transfer.resumable.time.sleep')).mock
        self.mocker = self.useFixture(
            requests_mock.contrib.fixture.Fixture())
        self.session = requests.Session()

    def reopen(self, headers):
        return self.session.get(URL, headers=headers, stream=True)

    def source(self, responses, **kwargs):
        """Answer the first GET and the reopens with ``responses``."""
        self.mocker.get(URL, responses)
        return resumable.ResumableResponse(self.reopen({}), self.reopen,
                                           URL, **kwargs)

    @staticmethod
    def first(body, etag='"v1"', last_modified=None, length=len(DATA)):
        headers = {'Content-Length': str(length)}
        if etag:
            headers['ETag'] = etag
        if last_modified:
            headers['Last-Modified'] = last_modified
        return {'body': body, 'headers': headers}

    @staticmethod
    def partial(start, content_range=None, status=206):
        return {'status_code': status,
                'body': io.BytesIO(DATA[start:]),
                'headers': {
                    'Content-Length': str(len(DATA) - start),
                    'ETag': '"v1"',
                    'Content-Range': content_range or 'bytes %d-%d/%d' % (
                        start, len(DATA) - 1, len(DATA))}}

    @staticmethod
    def full(data=DATA):
        return {'body': io.BytesIO(data),
                'headers': {'Content-Length': str(len(data)),
                            'ETag': '"v2"'}}

    def read_all(self, source, size=1000):
        """Read like the pipeline; return (data, restarts)."""
        data, restarts = bytearray(), 0
        buffer = bytearray(size)
        while True:
            try:
                count = source.readinto(buffer)
            except pipeline.RestartTransfer:
                restarts += 1
                data.clear()
                continue
            if not count:
                return bytes(data), restarts
            data += buffer[:count]

    def sent(self):
        return [(r.headers.get('Range'), r.headers.get('If-Range'))
                for r in self.mocker.request_history]

    def test_no_drop(self):
        source = self.source([self.full()])
        self.assertEqual(len(DATA), source.total)
        self.assertEqual((DATA, 0), self.read_all(source))
        self.assertEqual(0, source.drops)

    def test_drop_resumed_with_range_and_etag(self):
        source = self.source([self.first(DroppingBody(DATA, 3333)),
                              self.partial(3333)])
        self.assertEqual((DATA, 0), self.read_all(source))
        self.assertEqual([(None, None), ('bytes=3333-', '"v1"')],
                         self.sent())
        self.assertEqual(1, source.drops)
        self.assertEqual(1, self.sleep.call_count)

    def test_each_kind_of_drop(self):
        for error in (ConnectionResetError, TimeoutError,
                      requests.ConnectionError):
            source = self.source([self.first(DroppingBody(DATA, 10,
                                                          error)),
                                  self.partial(10)])
            self.assertEqual((DATA, 0), self.read_all(source), error)

    def test_body_shorter_than_content_length(self):
        source = self.source([self.first(io.BytesIO(DATA[:5000])),
                              self.partial(5000)])
        self.assertEqual((DATA, 0), self.read_all(source))
        self.assertEqual('bytes=5000-', self.sent()[1][0])

    def test_weak_etag_falls_back_to_last_modified(self):
        source = self.source([
            self.first(DroppingBody(DATA, 100), etag='W/"v1"',
                       last_modified=LAST_MODIFIED),
            self.partial(100)])
        self.assertEqual((DATA, 0), self.read_all(source))
        self.assertEqual(('bytes=100-', LAST_MODIFIED), self.sent()[1])

    def test_weak_etag_alone_restarts(self):
        source = self.source([
            self.first(DroppingBody(DATA, 100), etag='W/"v1"'),
            self.full()])
        self.assertEqual((DATA, 1), self.read_all(source))
        self.assertEqual([(None, None), (None, None)], self.sent())

    def test_resume_disabled_restarts(self):
        source = self.source([self.first(DroppingBody(DATA, 100)),
                              self.full()], resume=False)
        self.assertEqual((DATA, 1), self.read_all(source))
        self.assertEqual([(None, None), (None, None)], self.sent())

    def test_drop_before_any_byte_is_not_a_restart(self):
        source = self.source([self.first(DroppingBody(DATA, 0)),
                              self.full()])
        self.assertEqual((DATA, 0), self.read_all(source))
        self.assertEqual([(None, None), (None, None)], self.sent())

    def test_whole_body_instead_of_range_restarts_with_new_total(self):
        new = b'x' * 20000
        source = self.source([self.first(DroppingBody(DATA, 100)),
                              self.full(new)])
        self.assertEqual((new, 1), self.read_all(source))
        self.assertEqual(len(new), source.total)

    def test_partial_answer_checked(self):
        for content_range in ('bytes 99-10239/10240',   # wrong start
                              'bytes 100-10239/99999',  # other total
                              'garbage'):
            source = self.source([self.first(DroppingBody(DATA, 100)),
                                  self.partial(100, content_range)])
            error = self.assertRaises(exception.ImageDownloadFailed,
                                      self.read_all, source)
            self.assertIn('Content-Range', str(error))

    def test_partial_answer_with_unknown_total(self):
        source = self.source([self.first(DroppingBody(DATA, 100)),
                              self.partial(100, 'bytes 100-10239/*')])
        self.assertEqual((DATA, 0), self.read_all(source))

    def test_retryable_status_when_resuming(self):
        source = self.source([self.first(DroppingBody(DATA, 100)),
                              {'status_code': 503},
                              {'status_code': 429},
                              self.partial(100)])
        self.assertEqual((DATA, 0), self.read_all(source))
        self.assertEqual([None] + ['bytes=100-'] * 3,
                         [s[0] for s in self.sent()])

    def test_retry_after_honoured_when_resuming(self):
        source = self.source([self.first(DroppingBody(DATA, 100)),
                              {'status_code': 429,
                               'headers': {'Retry-After': '7'}},
                              self.partial(100)])
        self.assertEqual((DATA, 0), self.read_all(source))
        self.assertEqual(7.0, self.sleep.call_args_list[-1][0][0])

    def test_partial_answer_of_another_version_not_spliced(self):
        # A 206 must carry the validator the Range was guarded with: a
        # proxy or server that ignores If-Range must not splice two
        # versions together (RFC 9110 section 14.3: combine only parts
        # with the same strong validator).
        new = bytes(reversed(DATA))
        answer = self.partial(100)
        answer['body'] = io.BytesIO(new[100:])
        answer['headers']['ETag'] = '"v2"'
        source = self.source([self.first(DroppingBody(DATA, 100)), answer,
                              self.full(new)])
        try:
            data, _restarts = self.read_all(source)
        except exception.ImageDownloadFailed:
            return
        spliced = DATA[:100] + new[100:]
        self.assertNotEqual(hashlib.sha256(spliced).hexdigest(),
                            hashlib.sha256(data).hexdigest(),
                            'two versions were spliced together')

    def test_error_status_when_resuming(self):
        source = self.source([self.first(DroppingBody(DATA, 100)),
                              {'status_code': 404}])
        error = self.assertRaises(exception.ImageDownloadFailed,
                                  self.read_all, source)
        self.assertIn('HTTP 404 when resuming at byte 100', str(error))

    def test_gives_up_after_retries(self):
        source = self.source([self.first(DroppingBody(DATA, 100)),
                              {'exc': requests.ConnectionError('refused')}],
                             retries=2)
        error = self.assertRaises(exception.ImageDownloadFailed,
                                  self.read_all, source)
        self.assertIn('gave up after 2 retries', str(error))
        self.assertIn('refused', str(error))
        self.assertEqual(3, self.mocker.call_count)

    def test_no_retries(self):
        source = self.source([self.first(DroppingBody(DATA, 100)),
                              self.partial(100)], retries=0)
        self.assertRaises(exception.ImageDownloadFailed, self.read_all,
                          source)
        self.assertEqual(1, self.mocker.call_count)

    def test_progress_resets_the_retry_count(self):
        self.useFixture(fixtures.MockPatchObject(
            resumable, '_PROGRESS_RESETS_RETRIES', 1000))
        body = {'body': DroppingBody(DATA[2000:], 2000),
                'headers': {'Content-Length': str(len(DATA) - 2000),
                            'ETag': '"v1"',
                            'Content-Range': 'bytes 2000-10239/10240'},
                'status_code': 206}
        source = self.source([self.first(DroppingBody(DATA, 2000)), body,
                              self.partial(4000)], retries=1)
        self.assertEqual((DATA, 0), self.read_all(source))
        self.assertEqual(2, source.drops)

    def test_drops_without_progress_count(self):
        # Each drop after some progress, but less than the reset mark.
        body = {'body': DroppingBody(DATA[100:], 100),
                'headers': {'Content-Length': str(len(DATA) - 100),
                            'ETag': '"v1"',
                            'Content-Range': 'bytes 100-10239/10240'},
                'status_code': 206}
        source = self.source([self.first(DroppingBody(DATA, 100)), body,
                              self.partial(200)], retries=1)
        self.assertRaises(exception.ImageDownloadFailed, self.read_all,
                          source)
