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

"""Regression tests of the bugs the reliability suite found.

Each test names the fuzz or fault test that found the bug; the fix is in
the library module the test exercises.
"""

import hashlib
import io
import json
import logging

import fixtures
import requests
import requests_mock

from ironic_images.common import masking
from ironic_images import exception
from ironic_images.image_service import checksum_files
from ironic_images.image_service import file as file_service
from ironic_images.image_service import http
from ironic_images.image_service import oci as oci_service
from ironic_images.image_service.oci import client as oci_client
from ironic_images.image_service.oci import reference as oci_reference
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.reliability import base
from ironic_images.transfer import checksums
from ironic_images.transfer import http_client
from ironic_images.transfer import pipeline


class TestRetryAfterNaN(base.ReliabilityTestCase):
    """Found by test_fuzz_headers: ``Retry-After: nan`` escaped ValueError.

    float('nan') parses, and time.sleep(nan) raises ValueError, which
    escaped http_client.request (through tenacity) and ResumableResponse.
    """

    def test_nan_is_ignored(self):
        response = requests.Response()
        response.status_code = 429
        response.headers['Retry-After'] = 'nan'
        self.assertIsNone(http_client.retry_after(response))
        self.assertLessEqual(0, http_client.backoff(1, response))

    def test_request_gives_up_with_our_exception(self):
        self.useFixture(fixtures.MockPatchObject(http_client, 'BACKOFF_BASE',
                                                 0.001))
        with requests_mock.Mocker() as mocker:
            mocker.get('http://127.0.0.1:9/x', status_code=429,
                       headers={'Retry-After': 'NaN'})
            self.assertRaises(
                exception.ImageHostRateLimitFailure, http_client.request,
                requests.Session(), 'GET', 'http://127.0.0.1:9/x', retries=2,
                verify=True, timeout=1)


class _Interrupt(BaseException):
    """Like eventlet.Timeout or greenlet.GreenletExit: not an error."""


class TestBaseExceptionsPassThrough(base.ReliabilityTestCase):
    """Found by test_fuzz_headers: a BaseException became a download error.

    transfer.stream turned everything but KeyboardInterrupt and SystemExit
    into ImageDownloadFailed, so an eventlet Timeout (a BaseException) of
    a caller, or a test's hang alarm, was reported as a failed download.
    """

    def test_from_the_source(self):
        class Source:
            def readinto(self, buffer):
                raise _Interrupt()

        self.assertRaises(_Interrupt, pipeline.stream, Source(), [],
                          'http://127.0.0.1:9/x')

    def test_from_a_stage(self):
        class Stage:
            def update(self, data):
                raise _Interrupt()

        self.assertRaises(_Interrupt, pipeline.stream,
                          pipeline.IterableSource([b'x' * 10]), [Stage()],
                          'http://127.0.0.1:9/x')

    def test_errors_are_still_ours(self):
        class Source:
            def readinto(self, buffer):
                raise KeyError('x')

        self.assertRaises(exception.ImageDownloadFailed, pipeline.stream,
                          Source(), [], 'http://127.0.0.1:9/x')


class TestMalformedRedirect(base.ReliabilityTestCase):
    """Found by test_fuzz_hrefs / fault injection: a raw ValueError.

    A redirect whose Location does not parse ("http://[x/") made requests
    raise ValueError from urllib.parse, which escaped every public method
    of the http driver.
    """

    def test_download_and_show(self):
        server = self.useFixture(faults.FaultServerFixture())
        url = server.add('/disk.img', body=b'x' * 10)
        server.script('/disk.img', [faults.redirect('http://[x/')] * 8)
        service = http.HttpImageService()
        self.assertRaises(exception.ImageDownloadFailed, service.download,
                          url, io.BytesIO())
        self.assertRaises(exception.ImageRefValidationFailed, service.show,
                          url)
        # Not retried: it would not parse better the next time.
        self.assertEqual(2, len(server.requests))


class TestMalformedHrefs(base.ReliabilityTestCase):
    """Found by test_fuzz_hrefs: hrefs that urllib.parse cannot split.

    "oci://[]/x", "file://[", "http://[" made urlsplit raise ValueError
    out of parse_reference, the file and http drivers and the checksum
    helpers.
    """

    def test_drivers_refuse_them(self):
        for service_class, value in (
                (file_service.FileImageService, 'file://[/x'),
                (http.HttpImageService, 'http://[x/disk.img'),
                (http.HttpImageService, 'https://[::1/disk.img'),
                (oci_service.OciImageService, 'oci://[]/x@sha256:' + 'a' * 64),
        ):
            self.assertRaises(exception.ImageRefValidationFailed,
                              service_class().validate_href, value)
        self.assertRaises(exception.ImageRefValidationFailed,
                          oci_reference.parse_reference, 'oci://[/x')

    def test_checksums(self):
        self.assertFalse(checksums.is_checksum_url('http://[x/'))
        self.assertRaises(exception.InvalidChecksum,
                          checksum_files.resolve_checksum, 'http://[x/', None,
                          'http://127.0.0.1:9/disk.img')
        self.assertRaises(exception.ImageChecksumURLNotSupported,
                          checksum_files.fetch_checksum_file, 'http://[x/')
        digest = 'a' * 64
        self.assertEqual(
            ('sha256', digest), tuple(checksums.parse_checksum_file(
                '%s  disk.img\n%s  other' % (digest, 'b' * 64),
                'http://[x/disk.img')))


class _FakeRegistryTestCase(base.ReliabilityTestCase):
    """A FaultServer serving one manifest, by digest, as a registry."""

    def setUp(self):
        super().setUp()
        self.config(permit_fallback_to_http_transport=True, group='oci')
        self.server = self.useFixture(faults.FaultServerFixture())
        self.body = json.dumps({'schemaVersion': 2, 'config': {
            'digest': 'sha256:' + 'b' * 64, 'size': 2}, 'layers': [
            {'digest': 'sha256:' + 'a' * 64, 'size': 1}],
            'annotations': {'padding': 'x' * 2000}}).encode()
        digest = 'sha256:' + hashlib.sha256(self.body).hexdigest()
        self.path = '/v2/r/manifests/' + digest
        self.server.add(self.path, body=self.body)
        self.href = 'oci://127.0.0.1:%d/r@%s' % (self.server.port, digest)


class TestManifestReadDrops(_FakeRegistryTestCase):
    """Found by OCI fault injection: urllib3 errors escaped get_manifest.

    A connection cut, stalled or short while the manifest body was read
    raised urllib3's ProtocolError or ReadTimeoutError; now the read is
    retried, then fails with ImageDownloadFailed.
    """

    def test_retried(self):
        for fault in (faults.cut(100), faults.cut(100, reset=True),
                      faults.stall(100, 3),
                      faults.declare_length(len(self.body) + 10)):
            self.server.script(self.path, [fault], method='GET')
            self.assertEqual(2, oci_client.OciClient().get_manifest(
                self.href)['schemaVersion'])

    def test_gives_up(self):
        self.server.script(self.path, [faults.cut(100)] * 4, method='GET')
        self.assertRaises(exception.ImageDownloadFailed,
                          oci_client.OciClient().get_manifest, self.href)


class TestRegistryMalformedLinks(_FakeRegistryTestCase):
    """Found by the OCI fuzzing: a registry's malformed Location or Link.

    requests raised ValueError for a blob redirect to "http://[x/" (fixed
    in http_client, see TestMalformedRedirect); urljoin raised it out of
    get_tags for a Link to the next page "<http://[x/>".
    """

    def test_blob_redirect(self):
        blob = '/v2/r/blobs/sha256:' + 'a' * 64
        self.server.add(blob, body=b'x')
        self.server.script(blob, [faults.redirect('http://[x/', 307)])
        self.assertRaises(exception.IronicImagesException,
                          oci_client.OciClient().download_blob, self.href,
                          'sha256:' + 'a' * 64, io.BytesIO())

    def test_tag_list_link(self):
        tags = '/v2/r/tags/list'
        self.server.add(tags, body=b'{"name": "r", "tags": ["a"]}')
        self.server.script(tags, [faults.Fault(
            headers={'Link': '<http://[x/>; rel="next"'})])
        self.assertRaises(exception.ImageRefValidationFailed,
                          oci_client.OciClient().get_tags,
                          'oci://127.0.0.1:%d/r' % self.server.port)


class TestUrllib3RequestLines(base.ReliabilityTestCase):
    """Found by test_secret_hygiene: a signed URL's signature in the logs.

    urllib3 logs each request line, query included, at DEBUG:
    "GET /disk.img?X-Amz-Signature=... HTTP/1.1".
    """

    def test_masked(self):
        logs = self.useFixture(fixtures.FakeLogger(
            name='urllib3.connectionpool', level=logging.DEBUG))
        logger = logging.getLogger('urllib3.connectionpool')
        self.addCleanup(logger.setLevel, logger.level)
        logger.setLevel(logging.DEBUG)
        server = self.useFixture(faults.FaultServerFixture())
        url = server.add('/disk.img', body=b'x' * 10)
        http.HttpImageService().download(
            url + '?X-Amz-Signature=sig-a1b2c3d4e5&token=tok-a1b2c3d4e5',
            io.BytesIO())
        self.assertIn('GET /disk.img?X-Amz-Signature=***', logs.output)
        self.assertNotIn('a1b2c3d4e5', logs.output)


class TestDeeplyNestedJson(_FakeRegistryTestCase):
    """Found by test_fuzz_oci: RecursionError out of json.loads.

    A manifest, token answer or error body nested thousands deep made
    json raise RecursionError (not a ValueError), which escaped.
    """

    def test_manifest(self):
        deep = b'{"layers": [' * 5000
        digest = 'sha256:' + hashlib.sha256(deep).hexdigest()
        self.server.add('/v2/r/manifests/' + digest, body=deep)
        self.assertRaises(exception.ImageRefValidationFailed,
                          oci_client.OciClient().get_manifest,
                          'oci://127.0.0.1:%d/r@%s' % (
                              self.server.port, digest))

    def test_token_answer(self):
        self.server.add('/token', body=b'[' * 50000)
        self.server.script(self.path, [faults.Fault(status=401, headers={
            'Www-Authenticate': 'Bearer realm="%s/token"' % self.server.url})])
        self.assertRaises(exception.ImageRefValidationFailed,
                          oci_client.OciClient().get_manifest, self.href)


class TestUnsplittableUrlWithPassword(base.ReliabilityTestCase):
    """Found by test_secret_hygiene: a password in an exception message.

    mask_href fell back to oslo's mask_password when urlsplit could not
    split the href ("http://user:pass@[::1:80/x"), which does not know
    userinfo: validate_href's error message carried the password.
    """

    def test_masked(self):
        for value in ('http://user:pa55-word@[::1:80/x?token=tok3n',
                      'https://user:pa55-word@[x/disk.img',
                      'oci://user:pa55-word@[]/x'):
            for text in (masking.mask_href(value), masking.mask_text(
                    'see %s now' % value), str(
                        exception.ImageRefValidationFailed(
                            image_href=value, reason='x'))):
                self.assertNotIn('pa55-word', text)
                self.assertNotIn('tok3n', text)
                self.assertIn('user:***@', text)


class TestChecksumAlgorithmNotAString(base.ReliabilityTestCase):
    """Found by the Glance record fuzzing: AttributeError out of download.

    A Glance record whose os_hash_algo is a number made parse_checksum
    call .strip() on it.
    """

    def test_refused(self):
        for algo in (5, ['sha256'], {'a': 1}, b'sha256'):
            self.assertRaises(exception.ImageChecksumAlgorithmFailure,
                              checksums.parse_checksum, 'a' * 64, algo,
                              'glance://x')
        self.assertEqual('sha256', checksums.parse_checksum(
            'a' * 64, 'SHA256', 'x').algorithm)


class TestDeclaredSizeNotANumber(base.ReliabilityTestCase):
    """Found by test_fuzz_glance: a record's size escaped as TypeError.

    A Glance record whose ``size`` is a list reached transfer.stream as
    the expected size: TypeError out of download. A negative size made it
    stream with one-byte buffers.
    """

    def test_refused(self):
        for size in ([1], '10', 1.5, -1, True):
            source = pipeline.IterableSource([b'x' * 10])
            e = self.assertRaises(exception.ImageDownloadFailed,
                                  pipeline.stream, source, [],
                                  'http://127.0.0.1:9/x', expected_size=size)
            self.assertIn('size', str(e))
        self.assertEqual(10, pipeline.stream(
            pipeline.IterableSource([b'x' * 10]), [], 'http://127.0.0.1:9/x',
            expected_size=10).size)
