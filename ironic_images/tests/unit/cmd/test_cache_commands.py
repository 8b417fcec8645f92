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

"""Tests of cache list, clean and fetch."""

import io
import json
import os
from unittest import mock

from ironic_images.cmd import main
from ironic_images.tests.unit.cache import test_cache
from ironic_images.tests.unit.cmd import cli_base

HREF = test_cache.HREF


class CacheCommandTestCase(test_cache.FakeCacheTestCase):
    """The cache commands with the fake drivers of the cache's tests."""

    def setUp(self):
        super().setUp()
        self.conf_file = os.path.join(self.other_dir, 'test.conf')
        with open(self.conf_file, 'w') as f:
            f.write('[image_cache]\nmaster_path = %s\n' % self.master_dir)
        self.dest = os.path.join(self.other_dir, 'dest')

    def run_main(self, *args):
        stdout, stderr = io.StringIO(), io.StringIO()
        with mock.patch('sys.stdout', stdout), \
                mock.patch('sys.stderr', stderr):
            code = main.main(list(args) + ['--config-file', self.conf_file])
        self.assertEqual('', stderr.getvalue())
        return code, stdout.getvalue()

    def test_fetch_says_how(self):
        self.assertEqual(
            (0, 'Wrote %s (qcow2, downloaded into the cache)\n' % self.dest),
            self.run_main('cache', 'fetch', HREF, self.dest))
        self.assertEqual(
            (0, 'Wrote %s (raw, converted from the cached master)\n'
             % self.dest),
            self.run_main('cache', 'fetch', HREF, self.dest, '--raw'))
        self.assertEqual(
            (0, 'Wrote %s (raw, cache hit)\n' % self.dest),
            self.run_main('cache', 'fetch', HREF, self.dest, '--raw'))
        self.assertEqual(1, len(self.fetches))
        code, out = self.run_main('cache', 'fetch', HREF, self.dest,
                                  '-f', 'json')
        fields = json.loads(out)
        self.assertEqual(('hit', None, 'qcow2'),
                         (fields['cached'], fields['reason'],
                          fields['format']))
        self.assertTrue(fields['master'].startswith(self.master_dir))

    def test_not_cached_says_why(self):
        self.service.no_cache = True
        code, out = self.run_main('cache', 'fetch', HREF, self.dest)
        self.assertEqual((0, 'Wrote %s (qcow2, not cached: its image '
                          'service says not to cache it (an HTTP server\'s '
                          'Cache-Control: no-store))\n' % self.dest),
                         (code, out))

    def test_list(self):
        self.run_main('cache', 'fetch', HREF, self.dest)
        self.run_main('cache', 'fetch', HREF, self.dest + '2', '--raw')
        code, out = self.run_main('cache', 'list')
        self.assertEqual(0, code)
        self.assertIn(HREF + ' [raw]', out)
        self.assertIn('2 master(s)', out)
        code, out = self.run_main('cache', 'list', '-f', 'json')
        listing = json.loads(out)
        self.assertEqual([True, True], [m['in_use'] for m in listing])
        code, out = self.run_main('cache', 'list', '-f', 'value', '-c',
                                  'format')
        self.assertEqual('qcow2\nraw\n', out)

    def test_clean_says_what_it_kept_and_why(self):
        code, out = self.run_main('cache', 'clean')
        self.assertEqual(
            'Freed 0.0 MiB in %s: the cache is empty\n' % self.master_dir,
            out)
        self.run_main('cache', 'fetch', HREF, self.dest)
        self.run_main('cache', 'fetch', HREF, self.dest + '2', '--raw')
        os.unlink(self.dest + '2')
        code, out = self.run_main('cache', 'clean')
        self.assertEqual(0, code)
        self.assertIn('Freed 0.0 MiB in %s: 0 of 2 master(s) evicted; 1 '
                      'in use (linked to a destination); 1 unused, the '
                      'most recent used 0 min ago (they expire after '
                      % self.master_dir, out)
        self.assertIn('MiB kept, under the ', out)
        code, out = self.run_main('cache', 'clean', '--amount', '1', '-f',
                                  'json')
        fields = json.loads(out)
        self.assertEqual((1, 1, 2), (len(fields['evicted']),
                                     fields['kept'], fields['masters']))
        self.assertEqual(1, len(self.cache.list()))

    def test_negative_amount(self):
        stderr = io.StringIO()
        with mock.patch('sys.stderr', stderr), \
                mock.patch('sys.stdout', io.StringIO()):
            code = main.main(['cache', 'clean', '--amount', '-1'])
        self.assertEqual(2, code)
        self.assertIn('must not be negative', stderr.getvalue())

    def test_fetch_to_a_directory_is_a_usage_error(self):
        stderr = io.StringIO()
        with mock.patch('sys.stderr', stderr):
            code = main.main(['cache', 'fetch', HREF, self.other_dir])
        self.assertEqual(2, code)
        self.assertIn('is a directory', stderr.getvalue())


class LocalCacheFetchTestCase(cli_base.CommandTestCase):
    """The real file driver: a local image is not the cache's business."""

    def test_no_cache_directory_and_no_lock_file(self):
        master_path = os.path.join(self.out_dir, 'cache')
        self.write_config('[image_cache]\nmaster_path = %s\n' % master_path)
        for image in (self.image, self.href):
            self.write_config('[image_cache]\nmaster_path = %s\n'
                              '[file]\nallowed_paths = %s\n'
                              % (master_path, self.store))
            code, out, err = self.run_main('cache', 'fetch', image,
                                           self.dest)
            self.assertEqual((0, ''), (code, err))
            self.assertEqual('Wrote %s (raw, not cached: the image is a '
                             'file of this host already)\n' % self.dest,
                             out)
        code, out, err = self.run_main('cache', 'clean')
        self.assertIn('the cache is empty', out)
        self.assertFalse(os.path.exists(master_path))
