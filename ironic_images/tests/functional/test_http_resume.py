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

"""Resuming HTTP downloads against the FaultServer.

Each test asserts the digest of the written file and the requests the
server saw (Range, If-Range), and that a failure leaves nothing behind.
"""

import os
import time

from oslo_utils import units

from ironic_images import exception
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional import test_http_service as common

IMAGE = common.IMAGE
SIZE = len(IMAGE)
ETAG = '"image-v1"'


class ResumeTestCase(common.HttpTestCase):

    def setUp(self):
        super().setUp()
        self.config(chunk_size=256 * units.Ki, group='download')
        self.server = self.fault_server()

    def add(self, **kwargs):
        self.server.clear_requests()
        kwargs.setdefault('etag', ETAG)
        return self.server.add('/disk.img', body=IMAGE, **kwargs)

    def script(self, *script):
        self.server.script('/disk.img', list(script), method='GET')

    def gets(self):
        return [(r.header('range'), r.header('if-range'))
                for r in self.server.requests_for('/disk.img', 'GET')]


class TestResume(ResumeTestCase):

    def test_cut_at_any_offset(self):
        offsets = [1, 1000, 64 * units.Ki, 64 * units.Ki + 1,
                   256 * units.Ki - 1, 256 * units.Ki, units.Mi + 7,
                   SIZE - 1]
        for offset in offsets:
            url = self.add()
            self.script(faults.cut(offset))
            self.assertDownloads(url, checksum=common.IMAGE_SHA256)
            self.assertEqual([(None, None), ('bytes=%d-' % offset, ETAG)],
                             self.gets(), 'cut at %d' % offset)

    def test_cut_with_default_chunk_size(self):
        self.config(chunk_size=4 * units.Mi, group='download')
        url = self.add()
        self.script(faults.cut(units.Mi + 3))
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)
        self.assertEqual('bytes=%d-' % (units.Mi + 3), self.gets()[1][0])

    def test_cut_with_reset(self):
        url = self.add()
        self.script(faults.cut(units.Mi + 5, reset=True))
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)
        ranges = self.gets()
        self.assertEqual(2, len(ranges))
        # Bytes in flight, even received ones, may be lost with the RST
        # (then nothing is resumed); never beyond the cut.
        start = int((ranges[1][0] or 'bytes=0-')[len('bytes='):-1])
        self.assertLessEqual(start, units.Mi + 5)

    def test_cut_before_the_first_byte(self):
        url = self.add()
        self.script(faults.cut(0))
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)
        self.assertEqual([(None, None), (None, None)], self.gets())

    def test_several_cuts(self):
        self.config(retries=3, group='download')
        url = self.add()
        self.script(faults.cut(100000), faults.cut(50000), faults.cut(70001))
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)
        self.assertEqual([None, 'bytes=100000-', 'bytes=150000-',
                          'bytes=220001-'], [g[0] for g in self.gets()])

    def test_too_many_cuts(self):
        self.config(retries=2, group='download')
        url = self.add()
        self.script(*[faults.cut(1000)] * 3)
        error = self.assertDownloadFails(exception.ImageDownloadFailed, url)
        self.assertIn('gave up after 2 retries', str(error))
        self.assertEqual(3, len(self.gets()))

    def test_stall_past_the_read_timeout(self):
        self.config(webserver_connection_timeout=1)
        url = self.add()
        self.script(faults.stall(500001))
        started = time.monotonic()
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        ranges = [g[0] for g in self.gets()]
        self.assertEqual(2, len(ranges))
        # A timeout inside a read loses the count of that read's bytes:
        # they are asked for again, never a byte after the stall.
        start = int(ranges[1][len('bytes='):-1])
        self.assertGreater(start, 0)
        self.assertLessEqual(start, 500001)

    def test_resume_retried_through_5xx(self):
        url = self.add()
        self.script(faults.cut(300000), faults.error(503), faults.error(500))
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)
        self.assertEqual([None] + ['bytes=300000-'] * 3,
                         [g[0] for g in self.gets()])

    def test_resume_waits_as_asked(self):
        url = self.add()
        self.script(faults.cut(300000), faults.error(503, retry_after=1))
        started = time.monotonic()
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertEqual(3, len(self.gets()))

    def test_resume_refused(self):
        url = self.add()
        self.script(faults.cut(300000), faults.error(404))
        error = self.assertDownloadFails(exception.ImageDownloadFailed, url)
        self.assertIn('404', str(error))
        self.assertEqual(2, len(self.gets()))

    def test_resume_disabled(self):
        self.config(resume=False, group='download')
        url = self.add()
        self.script(faults.cut(300000))
        progress = common.ProgressRecorder()
        self.assertDownloads(url, checksum=common.IMAGE_SHA256,
                             progress=progress)
        self.assertEqual([(None, None)] * 2, self.gets())
        self.assertTrue(progress.restarted())


class TestRestartFromZero(ResumeTestCase):

    def _restarts(self, url, expected_gets, data=IMAGE, **kwargs):
        progress = common.ProgressRecorder()
        self.assertDownloads(url, data=data, progress=progress, **kwargs)
        self.assertEqual(expected_gets, self.gets())
        self.assertTrue(progress.restarted())
        self.assertEqual((len(data), len(data)), progress.calls[-1])

    def test_weak_etag_only(self):
        url = self.add(etag='W/"weak"', last_modified=None)
        self.script(faults.cut(300000))
        self._restarts(url, [(None, None)] * 2,
                       checksum=common.IMAGE_SHA256)

    def test_no_validator(self):
        url = self.add(etag=None, last_modified=None)
        self.script(faults.cut(300000))
        self._restarts(url, [(None, None)] * 2,
                       checksum=common.IMAGE_SHA256)

    def test_weak_etag_with_last_modified(self):
        url = self.add(etag='W/"weak"', last_modified=1700000000)
        self.script(faults.cut(300000))
        self.assertDownloads(url, checksum=common.IMAGE_SHA256)
        self.assertEqual([(None, None), ('bytes=300000-',
                                         'Tue, 14 Nov 2023 22:13:20 GMT')],
                         self.gets())

    def test_server_without_ranges(self):
        url = self.add(ranges=False)
        self.script(faults.cut(300000))
        # Asked for a range, answered with the whole body.
        self._restarts(url, [(None, None), ('bytes=300000-', ETAG)],
                       checksum=common.IMAGE_SHA256)

    def test_range_ignored_once(self):
        url = self.add()
        self.script(faults.cut(300000), faults.no_range())
        self._restarts(url, [(None, None), ('bytes=300000-', ETAG)])

    def test_body_changed_same_size(self):
        new = os.urandom(SIZE)
        url = self.add()
        self.script(faults.cut(300000), faults.change(new))
        self._restarts(url, [(None, None), ('bytes=300000-', ETAG)],
                       data=new)

    def test_body_changed_other_size(self):
        # The new image is complete and no checksum was asked for, so it is
        # what the caller gets: it must not be held to the old length.
        new = os.urandom(SIZE + 54321)
        url = self.add()
        self.script(faults.cut(300000), faults.change(new))
        self._restarts(url, [(None, None), ('bytes=300000-', ETAG)],
                       data=new)

    def test_body_changed_against_old_checksum(self):
        url = self.add()
        self.script(faults.cut(300000), faults.change(os.urandom(SIZE)))
        self.assertDownloadFails(exception.ImageChecksumError, url,
                                 checksum=common.IMAGE_SHA256)
        self.assertEqual(2, len(self.gets()))


class TestLyingContentLength(ResumeTestCase):

    def test_declares_more_than_sent(self):
        url = self.add()
        self.script(faults.declare_length(SIZE + 1000))
        error = self.assertDownloadFails(exception.ImageDownloadFailed, url)
        # The resume asks for the bytes that do not exist.
        self.assertEqual([None, 'bytes=%d-' % SIZE],
                         [g[0] for g in self.gets()])
        self.assertIn('416', str(error))

    def test_declares_fewer_than_sent(self):
        url = self.add()
        self.script(faults.declare_length(SIZE - 1000))
        self.assertDownloadFails(exception.ImageChecksumError, url,
                                 checksum=common.IMAGE_SHA256)
        # Without a checksum nothing can tell: the declared length is what
        # the transfer verifies.
        self.script(faults.declare_length(SIZE - 1000))
        self.assertDownloads(url, data=IMAGE[:SIZE - 1000])
