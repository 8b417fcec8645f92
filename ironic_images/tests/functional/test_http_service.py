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

"""HttpImageService against real servers on loopback.

nginx serves images, checksum files and redirects; the FaultServer makes
the errors nginx cannot. Resume tests are in test_http_resume, redirects in
test_http_redirects, auth and TLS in test_http_auth_tls;
:class:`HttpTestCase` is the base of them all.
"""

import datetime
import hashlib
import os
import time

import fixtures
from oslo_utils import units

from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images.image_service import http
from ironic_images.tests import base
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional.servers import nginx
from ironic_images.transfer import bodies
from ironic_images.transfer import http_client

# Not a multiple of any chunk size.
IMAGE = os.urandom(3 * units.Mi + 12345)
IMAGE_SHA256 = hashlib.sha256(IMAGE).hexdigest()
IMAGE_SHA512 = hashlib.sha512(IMAGE).hexdigest()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class HttpTestCase(base.TestCase):
    """Temp dirs, fast retries, short timeouts, download helpers.

    ``self.root`` is what nginx serves; downloads go to ``self.dest_dir``
    through :func:`fileutils.atomic_write`, as a real caller does.
    """

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.useFixture(fixtures.MockPatchObject(http_client, 'BACKOFF_BASE',
                                                 0.01))
        self.config(webserver_connection_timeout=2)
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.root = os.path.join(self.tmp, 'root')
        self.dest_dir = os.path.join(self.tmp, 'dest')
        os.mkdir(self.root)
        os.mkdir(self.dest_dir)

    def put(self, name, data=IMAGE):
        path = os.path.join(self.root, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def nginx(self, **kwargs):
        return self.useFixture(nginx.NginxFixture(self.root, **kwargs))

    def fault_server(self):
        return self.useFixture(faults.FaultServerFixture())

    def download(self, url, name='disk.img', service=None, **kwargs):
        """Download into dest_dir/name atomically; return the path."""
        dest = os.path.join(self.dest_dir, name)
        service = service or http.HttpImageService()
        with fileutils.atomic_write(dest) as image_file:
            service.download(url, image_file, **kwargs)
        return dest

    def assertDownloads(self, url, data=IMAGE, **kwargs):
        """Download and compare the file with ``data``; return the path."""
        dest = self.download(url, **kwargs)
        with open(dest, 'rb') as f:
            written = f.read()
        self.assertEqual(len(data), len(written))
        self.assertEqual(sha256(data), sha256(written))
        return dest

    def assertDownloadFails(self, error_class, url, name='disk.img',
                            **kwargs):
        """A failed download leaves no file and no .part behind."""
        before = os.listdir(self.dest_dir)
        self.assertNotIn(name, before)
        error = self.assertRaises(error_class, self.download, url, name,
                                  **kwargs)
        self.assertFalse(os.path.exists(os.path.join(self.dest_dir, name)))
        self.assertEqual(sorted(before), sorted(os.listdir(self.dest_dir)))
        self.assertEqual([], [n for n in os.listdir(self.dest_dir)
                              if n.endswith(fileutils.PART_SUFFIX)])
        return error


class ProgressRecorder:

    def __init__(self):
        self.calls = []

    def __call__(self, done, total):
        self.calls.append((done, total))

    def restarted(self):
        """True when the count ever stopped growing (a restart)."""
        done = [c[0] for c in self.calls]
        return any(b <= a for a, b in zip(done, done[1:]))


class TestDownloadAndChecksums(HttpTestCase):

    def setUp(self):
        super().setUp()
        self.put('disk.img')
        self.put('other.img', b'other')
        self.server = self.nginx()
        self.url = self.server.url_for('disk.img')

    def test_download_without_checksum(self):
        service = http.HttpImageService()
        self.assertDownloads(self.url, service=service)
        self.assertIsNone(service.transfer_verified_checksum)
        log = self.server.requests_log(count=1)
        self.assertEqual([('GET', 200, len(IMAGE))],
                         [(e['method'], e['status'], e['body_bytes_sent'])
                          for e in log])

    def test_checksum_values(self):
        cases = [
            (IMAGE_SHA256, None, 'sha256:' + IMAGE_SHA256),
            (IMAGE_SHA256.upper(), None, 'sha256:' + IMAGE_SHA256),
            ('sha256:' + IMAGE_SHA256, None, 'sha256:' + IMAGE_SHA256),
            (IMAGE_SHA512, None, 'sha512:' + IMAGE_SHA512),
            (IMAGE_SHA512, 'sha512', 'sha512:' + IMAGE_SHA512),
            ('SHA512:' + IMAGE_SHA512, None, 'sha512:' + IMAGE_SHA512),
        ]
        for checksum, algo, verified in cases:
            service = http.HttpImageService()
            self.assertDownloads(self.url, service=service,
                                 checksum=checksum, checksum_algo=algo)
            self.assertEqual(verified, service.transfer_verified_checksum)

    def test_checksum_files_in_each_form(self):
        other = sha256(b'other')
        files = {
            'gnu.sha256': '# made by sha256sum\n%s  other.img\n'
                          '%s  disk.img\n' % (other, IMAGE_SHA256),
            'gnu-binary.sha256': '%s *other.img\n%s *disk.img\n' % (
                other, IMAGE_SHA256.upper()),
            'gnu-path.sha256': '%s  ./images/disk.img\n' % IMAGE_SHA256,
            'bsd.sha256': 'SHA256 (other.img) = %s\n'
                          'SHA256 (disk.img) = %s\n' % (other, IMAGE_SHA256),
            'bsd.sha512': 'SHA512 (disk.img) = %s\n' % IMAGE_SHA512,
            'single.sha256': '\n%s\n' % IMAGE_SHA256,
        }
        for name, text in files.items():
            self.put(name, text.encode())
        for name in files:
            service = http.HttpImageService()
            self.assertDownloads(self.url, service=service,
                                 checksum=self.server.url_for(name))
            algo = 'sha512' if name.endswith('512') else 'sha256'
            self.assertEqual(
                '%s:%s' % (algo, IMAGE_SHA512 if algo == 'sha512'
                           else IMAGE_SHA256),
                service.transfer_verified_checksum, name)

    def test_checksum_file_without_the_image(self):
        self.put('SUMS', ('%s  other.img\n%s  third.img\n' % (
            IMAGE_SHA256, IMAGE_SHA256)).encode())
        self.server.reset_log()
        error = self.assertDownloadFails(
            exception.InvalidChecksum, self.url,
            checksum=self.server.url_for('SUMS'))
        self.assertIn('other.img, third.img', str(error))
        # The image itself is not fetched for nothing.
        self.assertEqual(['/SUMS'],
                         [e['uri'] for e in self.server.requests_log(1)])

    def test_checksum_file_missing(self):
        self.assertDownloadFails(exception.ImageRefValidationFailed,
                                 self.url,
                                 checksum=self.server.url_for('nope.sha256'))

    def test_checksum_mismatch_leaves_nothing(self):
        service = http.HttpImageService()
        self.assertDownloads(self.url, service=service,
                             checksum=IMAGE_SHA256)
        wrong = sha256(b'something else')
        os.unlink(os.path.join(self.dest_dir, 'disk.img'))
        error = self.assertDownloadFails(exception.ImageChecksumError,
                                         self.url, service=service,
                                         checksum=wrong)
        self.assertIn(wrong, str(error))
        self.assertIn(IMAGE_SHA256, str(error))
        self.assertIsNone(service.transfer_verified_checksum)

    def test_failure_keeps_existing_destination(self):
        dest = os.path.join(self.dest_dir, 'disk.img')
        with open(dest, 'wb') as f:
            f.write(b'previous image')
        self.assertRaises(exception.ImageChecksumError, self.download,
                          self.url, checksum=sha256(b'x'))
        with open(dest, 'rb') as f:
            self.assertEqual(b'previous image', f.read())
        self.assertEqual(['disk.img'], os.listdir(self.dest_dir))

    def test_progress_reaches_the_size(self):
        self.config(chunk_size=256 * units.Ki, group='download')
        progress = ProgressRecorder()
        self.assertDownloads(self.url, checksum=IMAGE_SHA256,
                             progress=progress)
        self.assertGreater(len(progress.calls), 4)
        self.assertEqual((len(IMAGE), len(IMAGE)), progress.calls[-1])
        self.assertEqual({len(IMAGE)}, {c[1] for c in progress.calls})
        self.assertFalse(progress.restarted())

    def test_show(self):
        os.utime(os.path.join(self.root, 'disk.img'),
                 (1700000000, 1700000000))
        info = http.HttpImageService().show(self.url)
        self.assertEqual(len(IMAGE), info['size'])
        self.assertEqual(datetime.datetime(2023, 11, 14, 22, 13, 20),
                         info['updated_at'])
        self.assertIsNone(info['updated_at'].tzinfo)
        self.assertFalse(info['no_cache'])
        props = info['properties']
        self.assertEqual(self.url, props['url'])
        self.assertEqual('application/octet-stream', props['content_type'])
        self.assertEqual('Tue, 14 Nov 2023 22:13:20 GMT',
                         props['last_modified'])
        self.assertRegex(props['etag'], r'^"[0-9a-f]+-[0-9a-f]+"$')
        self.assertEqual(['HEAD'], [e['method'] for e in
                                    self.server.requests_log(1)])

    def test_get_returns_text(self):
        self.put('SHA256SUMS', b'abc  disk.img\n')
        self.assertEqual('abc  disk.img\n', http.HttpImageService.get(
            self.server.url_for('SHA256SUMS')))

    def test_get_size_cap(self):
        for name, size in (('max.txt', bodies.CHECKSUM_FILE),
                           ('big.txt', bodies.CHECKSUM_FILE + 1)):
            with open(os.path.join(self.root, name), 'wb') as f:
                f.truncate(size)
        self.assertEqual(bodies.CHECKSUM_FILE, len(http.HttpImageService.get(
            self.server.url_for('max.txt'))))
        error = self.assertRaises(exception.ImageDownloadFailed,
                                  http.HttpImageService.get,
                                  self.server.url_for('big.txt'))
        self.assertIn('larger than', str(error))

    def test_get_missing(self):
        self.assertRaises(exception.ImageRefValidationFailed,
                          http.HttpImageService.get,
                          self.server.url_for('nope'))


class TestShowNoStore(HttpTestCase):

    def test_no_store(self):
        self.put('nostore.img', b'abc')
        server = self.nginx(locations='location = /nostore.img {\n'
                                      '    add_header Cache-Control '
                                      '"private, no-store";\n}\n')
        info = http.HttpImageService().show(server.url_for('nostore.img'))
        self.assertTrue(info['no_cache'])
        self.assertEqual(3, info['size'])


class TestErrors(HttpTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.fault_server()
        self.url = self.server.add('/disk.img', body=IMAGE)

    def gets(self):
        return self.server.requests_for('/disk.img', 'GET')

    def test_client_errors(self):
        for status in (403, 404, 410):
            self.server.script('/disk.img', [faults.error(status)] * 2)
            error = self.assertRaises(
                exception.ImageRefValidationFailed,
                http.HttpImageService().validate_href, self.url)
            self.assertIn('HTTP %d' % status, str(error))
            error = self.assertDownloadFails(
                exception.ImageRefValidationFailed, self.url)
            self.assertIn('HTTP %d' % status, str(error))
        # Not retried: one HEAD and one GET per status.
        self.assertEqual(6, len(self.server.requests_for('/disk.img')))

    def test_missing(self):
        url = self.server.url_for('/nothing.img')
        self.assertRaises(exception.ImageRefValidationFailed,
                          http.HttpImageService().validate_href, url)
        self.assertDownloadFails(exception.ImageRefValidationFailed, url)

    def test_500_retried_then_temporary_failure(self):
        self.config(retries=2, group='download')
        self.server.script('/disk.img', [faults.error(500)] * 10)
        error = self.assertDownloadFails(exception.TemporaryFailure,
                                         self.url)
        self.assertIn('HTTP 500 after 3 attempts', str(error))
        self.assertEqual(3, len(self.gets()))

    def test_503_burst_then_success(self):
        self.config(retries=3, group='download')
        self.server.script('/disk.img', [faults.error(503)] * 3)
        self.assertDownloads(self.url, checksum=IMAGE_SHA256)
        self.assertEqual(4, len(self.gets()))

    def test_429_waits_as_asked(self):
        self.server.script('/disk.img', [faults.error(429, retry_after=1)])
        started = time.monotonic()
        self.assertDownloads(self.url, checksum=IMAGE_SHA256)
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertEqual(2, len(self.gets()))

    def test_429_persisting(self):
        self.config(retries=1, group='download')
        self.server.script('/disk.img',
                           [faults.error(429, retry_after=0)] * 10)
        self.assertDownloadFails(exception.ImageHostRateLimitFailure,
                                 self.url)
        self.assertEqual(2, len(self.gets()))

    def test_connection_refused(self):
        self.config(retries=1, group='download')
        port = self.server.port
        self.server.server.stop()
        url = 'http://127.0.0.1:%d/disk.img' % port
        self.assertRaises(exception.ImageRefValidationFailed,
                          http.HttpImageService().validate_href, url)
        self.assertDownloadFails(exception.ImageDownloadFailed, url)

    def test_head_refused(self):
        for status in (405, 501):
            url = self.server.add('/h%d.img' % status, body=IMAGE,
                                  head_status=status)
            service = http.HttpImageService()
            service.validate_href(url)
            info = service.show(url)
            self.assertEqual(len(IMAGE), info['size'])
            self.assertIsNotNone(info['properties']['etag'])
            self.assertIsNotNone(info['updated_at'])
            seen = [(r.method, r.header('range')) for r in
                    self.server.requests_for('/h%d.img' % status)]
            self.assertEqual([('HEAD', None), ('GET', 'bytes=0-0')] * 2,
                             seen)

    def test_head_refused_and_no_ranges(self):
        url = self.server.add('/h.img', body=IMAGE, head_status=405,
                              ranges=False)
        self.assertEqual(len(IMAGE), http.HttpImageService().show(url)[
            'size'])
