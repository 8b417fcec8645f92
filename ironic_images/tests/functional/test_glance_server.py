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
"""Self-tests of the real Glance test server (:mod:`.servers.glance`)."""

import hashlib
import os
import time
import unittest

import fixtures
from oslotest import base as test_base

from ironic_images.tests.functional.servers import base
from ironic_images.tests.functional.servers import glance

DATA = bytes(range(256)) * 1024  # 256 KiB


class TestGlanceServer(test_base.BaseTestCase):

    def test_create_upload_download_and_log(self):
        server = self.useFixture(glance.GlanceFixture())
        self.assertEqual('http://127.0.0.1:%d' % server.port, server.url)
        server.reset_log()
        image = server.create_image(DATA, name='smoke', smoke_prop='x')
        self.assertEqual('active', image['status'])
        self.assertEqual(len(DATA), image['size'])
        self.assertEqual('x', image['smoke_prop'])
        self.assertEqual(hashlib.md5(DATA).hexdigest(), image['checksum'])
        self.assertEqual('sha512', image['os_hash_algo'])
        self.assertEqual(hashlib.sha512(DATA).hexdigest(),
                         image['os_hash_value'])
        # The file store holds the bytes where image_path() says, and
        # direct_url shows that path.
        path = server.image_path(image['id'])
        self.assertTrue(path.startswith(server.data_dir + os.sep))
        with open(path, 'rb') as f:
            self.assertEqual(DATA, f.read())
        self.assertEqual('file://' + path, image['direct_url'])

        resp = server.request('GET', '/v2/images/%s/file' % image['id'],
                              expected=200,
                              headers={'X-Auth-Token': 'any-token'})
        self.assertEqual(DATA, resp.content)
        resp = server.request('GET', '/v2/images/%s/file' % image['id'],
                              expected=206, headers={'Range': 'bytes=0-9'})
        self.assertEqual(DATA[:10], resp.content)

        log = server.requests_log(count=5, helpers=True)
        self.assertEqual(
            [('POST', '/v2/images', 201),
             ('PUT', '/v2/images/%s/file' % image['id'], 204),
             ('GET', '/v2/images/%s' % image['id'], 200),
             ('GET', '/v2/images/%s/file' % image['id'], 200),
             ('GET', '/v2/images/%s/file' % image['id'], 206)],
            [(e['method'], e['path'], e['status']) for e in log])
        self.assertEqual([None, None, None, 'any-token', None],
                         [e['token'] for e in log])
        self.assertEqual(len(DATA), log[3]['bytes_sent'])
        self.assertEqual('bytes=0-9', log[4]['range'])
        self.assertEqual('application/json', log[0]['content_type'])

    def _logged(self, server, path, timeout=10):
        """The first request to ``path`` in the log, waiting for it."""
        deadline = time.monotonic() + timeout
        while True:
            entries = [e for e in server.requests_log(helpers=True)
                       if e['path'] == path]
            if entries:
                return entries[0]
            if time.monotonic() > deadline:
                self.fail('no request to %s was logged' % path)
            time.sleep(0.05)

    def test_queued_image_query_no_direct_url_and_stop(self):
        server = glance.GlanceServer(venv=glance.ensure_venv(),
                                     direct_url=False)
        self.addCleanup(server.stop)
        server.start()
        image = server.create_image(name='queued')
        self.assertEqual('queued', image['status'])
        self.assertIsNone(image['size'])
        full = server.create_image(b'abc', name='full')
        self.assertNotIn('direct_url', full)
        server.reset_log()
        body = server.request('GET', '/v2/images?limit=1&name=full',
                              expected=200).json()
        self.assertEqual([full['id']], [i['id'] for i in body['images']])
        # gunicorn logs a request once its answer is sent: the upload of
        # "full" may be logged after reset_log on a loaded machine.
        entry = self._logged(server, '/v2/images')
        self.assertEqual('limit=1&name=full', entry['query'])
        self.assertEqual([], server.requests_log())  # only helpers' so far
        self.assertIsNone(server.get_image(
            '6f2d5d5e-6a55-4f4e-9d36-0f4c7a0c0e11'))

        workdir, port, pid = server.workdir, server.port, server.pid
        server.stop()
        self.assertIsNone(server.process)
        self.assertFalse(base.port_open(port))
        self.assertFalse(os.path.exists(workdir))
        # The whole process group is gone: gunicorn's worker too.
        self.assertRaises(ProcessLookupError, os.killpg, pid, 0)


class _Owner(unittest.TestCase):
    """A stand-in for a test class sharing a server."""


class _OtherOwner(unittest.TestCase):
    """Another one."""


class TestSharedGlance(test_base.BaseTestCase):

    def test_one_server_per_class_stopped_by_class_cleanup(self):
        self.addCleanup(_Owner.doClassCleanups)
        first = glance.GlanceFixture(share_with=_Owner)
        first.setUp()
        second = self.useFixture(glance.GlanceFixture(share_with=_Owner))
        self.assertIs(first.server, second.server)
        self.addCleanup(_OtherOwner.doClassCleanups)
        other = self.useFixture(glance.GlanceFixture(share_with=_OtherOwner))
        self.assertNotEqual(first.port, other.port)
        # A fixture's clean-up leaves a shared server running...
        first.cleanUp()
        self.assertTrue(base.port_open(second.port))
        # ...until the class is done.
        _Owner.doClassCleanups()
        self.assertIsNone(second.server.process)
        self.assertFalse(base.port_open(second.port))


class TestEnsureVenv(test_base.BaseTestCase):

    def _bad_venv(self):
        # Not a virtualenv, not empty: tools/setup-glance refuses to touch
        # it, so it fails at once.
        path = self.useFixture(fixtures.TempDir()).path
        self.addCleanup(os.remove, path + '.lock')
        with open(os.path.join(path, 'precious.txt'), 'w') as f:
            f.write('not a venv')
        self.useFixture(fixtures.EnvironmentVariable(glance.VENV_ENV, path))
        return path

    def test_setup_failure_skips_outside_ci(self):
        path = self._bad_venv()
        self.useFixture(fixtures.EnvironmentVariable('CI'))
        error = self.assertRaises(self.skipException, glance.ensure_venv)
        self.assertIn('not a virtualenv', str(error))
        self.assertTrue(os.path.exists(os.path.join(path, 'precious.txt')))

    def test_setup_failure_is_an_error_in_ci(self):
        self._bad_venv()
        self.useFixture(fixtures.EnvironmentVariable('CI', 'true'))
        self.assertRaisesRegex(RuntimeError, '(?s)CI is set.*not a virtualenv',
                               glance.ensure_venv)
