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
"""Self-tests of the test servers in :mod:`.servers`."""

import http.client
import os
import time

import fixtures
from oslotest import base as test_base
import requests

from ironic_images.tests.functional.servers import base
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.functional.servers import tls

DATA = bytes(range(256)) * 4096  # 1 MiB


class ServersTestCase(test_base.BaseTestCase):

    def setUp(self):
        super(ServersTestCase, self).setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.root = os.path.join(self.tmp, 'root')
        os.mkdir(self.root)
        with open(os.path.join(self.root, 'disk.img'), 'wb') as f:
            f.write(DATA)


class TestBase(ServersTestCase):

    def test_require_binary(self):
        self.useFixture(fixtures.EnvironmentVariable('CI'))
        self.assertTrue(base.require_binary('sh').endswith('/sh'))
        self.assertRaises(self.skipException, base.require_binary,
                          'no-such-binary-here')
        self.useFixture(fixtures.EnvironmentVariable('CI', '1'))
        self.assertRaisesRegex(RuntimeError, 'no-such-binary-here',
                               base.require_binary, 'no-such-binary-here')

    def test_wait_until_ready_times_out(self):
        self.assertRaises(TimeoutError, base.wait_until_ready,
                          lambda: False, 0.05)


class TestNginx(ServersTestCase):

    def test_range_and_log(self):
        server = self.useFixture(nginx.NginxFixture(self.root))
        url = server.url_for('disk.img')
        self.assertEqual('http://127.0.0.1:%d/disk.img' % server.port, url)
        resp = requests.head(url, verify=False, timeout=10)
        self.assertEqual(str(len(DATA)), resp.headers['Content-Length'])
        resp = requests.get(url, headers={'Range': 'bytes=100-199'},
                            verify=False, timeout=10)
        self.assertEqual(206, resp.status_code)
        self.assertEqual('bytes 100-199/%d' % len(DATA),
                         resp.headers['Content-Range'])
        self.assertEqual(DATA[100:200], resp.content)
        log = server.requests_log(count=2)
        self.assertEqual(['HEAD', 'GET'], [e['method'] for e in log])
        self.assertEqual('/disk.img', log[1]['uri'])
        self.assertEqual(206, log[1]['status'])
        self.assertEqual(100, log[1]['body_bytes_sent'])
        self.assertEqual('bytes=100-199', log[1]['range'])
        self.assertIsNone(log[0]['range'])
        self.assertFalse(log[1]['authorization'])

    def test_redirect(self):
        server = self.useFixture(nginx.NginxFixture(
            self.root, locations=nginx.redirect_location(
                '/old.img', '/disk.img', 307)))
        resp = requests.get(server.url_for('old.img'), verify=False,
                            timeout=10)
        self.assertEqual([307], [r.status_code for r in resp.history])
        self.assertEqual(DATA, resp.content)

    def test_tls(self):
        ca = tls.make_test_ca(self.tmp)
        server = self.useFixture(nginx.NginxFixture(
            self.root, tls_cert=ca.cert, tls_key=ca.key))
        self.assertTrue(server.url.startswith('https://127.0.0.1:'))
        resp = requests.get(server.url_for('disk.img'), verify=ca.ca_cert,
                            timeout=10)
        self.assertEqual(DATA, resp.content)
        self.assertRaises(requests.exceptions.SSLError, requests.get,
                          server.url_for('disk.img'), verify=True,
                          timeout=10)

    def test_basic_auth(self):
        htpasswd = nginx.make_htpasswd(os.path.join(self.tmp, 'htpasswd'),
                                       'user', 'secret')
        server = self.useFixture(nginx.NginxFixture(self.root,
                                                    htpasswd=htpasswd))
        url = server.url_for('disk.img')
        resp = requests.get(url, verify=False, timeout=10)
        self.assertEqual(401, resp.status_code)
        resp = requests.get(url, auth=('user', 'wrong'), verify=False,
                            timeout=10)
        self.assertEqual(401, resp.status_code)
        resp = requests.get(url, auth=('user', 'secret'), verify=False,
                            timeout=10)
        self.assertEqual(200, resp.status_code)
        self.assertEqual(DATA, resp.content)
        log = server.requests_log(count=3)
        self.assertEqual([False, True, True],
                         [e['authorization'] for e in log])

    def test_stop_kills_the_process(self):
        server = nginx.NginxServer(self.root)
        with server:
            pid = server.pid
            os.kill(pid, 0)
        self.assertRaises(ProcessLookupError, os.kill, pid, 0)
        self.assertFalse(os.path.exists(server.workdir))


class TestFaultServer(ServersTestCase):

    def setUp(self):
        super(TestFaultServer, self).setUp()
        self.server = self.useFixture(faults.FaultServerFixture())
        self.url = self.server.add('/disk.img', body=DATA, etag='v1')

    def test_range_and_if_range(self):
        resp = requests.get(self.url, headers={'Range': 'bytes=-10'},
                            verify=False, timeout=10)
        self.assertEqual(206, resp.status_code)
        self.assertEqual(DATA[-10:], resp.content)
        self.assertEqual('"v1"', resp.headers['ETag'])
        resp = requests.get(self.url, headers={'Range': 'bytes=10-',
                                               'If-Range': '"v0"'},
                            verify=False, timeout=10)
        self.assertEqual(200, resp.status_code)
        self.assertEqual(DATA, resp.content)
        resp = requests.get(self.url, headers={'Range': 'bytes=%d-' % (
            len(DATA))}, verify=False, timeout=10)
        self.assertEqual(416, resp.status_code)
        self.assertEqual(['bytes=-10', 'bytes=10-', 'bytes=%d-' % len(DATA)],
                         [r.header('Range') for r in self.server.requests])

    def test_cut_after(self):
        self.server.script('/disk.img', [faults.cut(1000)])
        conn = http.client.HTTPConnection('127.0.0.1', self.server.port,
                                          timeout=10)
        self.addCleanup(conn.close)
        conn.request('GET', '/disk.img')
        resp = conn.getresponse()
        self.assertEqual(200, resp.status)
        self.assertEqual(str(len(DATA)), resp.headers['Content-Length'])
        exc = self.assertRaises(http.client.IncompleteRead, resp.read)
        self.assertEqual(DATA[:1000], exc.partial)
        # The next request is served normally.
        resp = requests.get(self.url, verify=False, timeout=10)
        self.assertEqual(DATA, resp.content)

    def test_error_then_success(self):
        self.server.script('/disk.img', [faults.error(503, retry_after=2)])
        resp = requests.get(self.url, verify=False, timeout=10)
        self.assertEqual(503, resp.status_code)
        self.assertEqual('2', resp.headers['Retry-After'])
        resp = requests.get(self.url, verify=False, timeout=10)
        self.assertEqual(200, resp.status_code)
        self.assertEqual(DATA, resp.content)
        self.assertEqual(2, len(self.server.requests_for('/disk.img')))

    def test_stall_is_woken_by_stop(self):
        server = faults.FaultServer().start()
        server.add('/x', body=DATA)
        server.script('/x', [faults.stall(10)])
        conn = http.client.HTTPConnection('127.0.0.1', server.port,
                                          timeout=10)
        self.addCleanup(conn.close)
        conn.request('GET', '/x')
        resp = conn.getresponse()
        self.assertEqual(10, len(resp.read(10)))
        started = time.monotonic()
        server.stop()
        self.assertLess(time.monotonic() - started, 5)
        self.assertRaises(http.client.IncompleteRead, resp.read)

    def test_change_no_range_and_head(self):
        self.server.add('/other', body=b'abc', head_status=405)
        self.assertEqual(405, requests.head(self.server.url_for('/other'),
                                            verify=False,
                                            timeout=10).status_code)
        self.server.script('/disk.img', [faults.no_range(),
                                         faults.change(b'new')],
                           method='GET')
        headers = {'Range': 'bytes=10-', 'If-Range': '"v1"'}
        resp = requests.get(self.url, headers=headers, verify=False,
                            timeout=10)
        self.assertEqual(200, resp.status_code)
        self.assertNotIn('Accept-Ranges', resp.headers)
        self.assertEqual(DATA, resp.content)
        resp = requests.get(self.url, headers=headers, verify=False,
                            timeout=10)
        self.assertEqual(200, resp.status_code)
        self.assertEqual(b'new', resp.content)
        self.assertNotEqual('"v1"', resp.headers['ETag'])
