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

"""The master-image cache against nginx, with threads and processes.

Upstream requests are counted from nginx's access log: N callers at once
cause one GET, a revalidation is a 304 with no body, a changed image is
downloaded again. Eviction, links and crash leftovers are checked on the
real cache directory.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import fixtures
from oslo_utils import units

from ironic_images.cache import cache
from ironic_images.cache import locks as cache_locks
from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images import image_cache
from ironic_images.image_service import http
from ironic_images.tests import base
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import registry


def _image(size=4 * units.Mi):
    # Random bytes after 64 KiB of zeros: no format signature by chance.
    return bytes(64 * units.Ki) + os.urandom(size - 64 * units.Ki)


IMAGE = _image()

# A caller in its own process: loads the driver (as a running service
# has), prints "ready", waits for a line on stdin, fetches through the
# cache and prints the result as JSON.
_CHILD = r"""
import json
import sys

from ironic_images.conf import CONF
CONF([], project='ironic-images', default_config_files=[])
from ironic_images import image_cache
from ironic_images import image_service

master_dir, url, dest = sys.argv[1:4]
image_service.get_image_service(url)
print('ready', flush=True)
sys.stdin.readline()
result = image_cache.ImageCache(master_dir, 10 ** 10, 3600).fetch_image(
    url, dest, force_raw=False)
print(json.dumps(result._asdict()), flush=True)
"""


class CacheTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        # A leftover clean-up runs once per process and directory: each
        # test starts as a new process would.
        self.useFixture(fixtures.MockPatchObject(cache, '_PREPARED', set()))
        tmp = self.useFixture(fixtures.TempDir()).path
        self.root = os.path.join(tmp, 'root')
        self.master_dir = os.path.join(tmp, 'master')
        self.dest_dir = os.path.join(tmp, 'dest')
        for directory in (self.root, self.master_dir, self.dest_dir,
                          os.path.join(self.root, 'slow'),
                          os.path.join(self.root, 'nostore')):
            os.mkdir(directory)
        self.cache = image_cache.ImageCache(self.master_dir, 10 ** 10,
                                            3600)

    def put(self, name, data=IMAGE, mtime=None):
        path = os.path.join(self.root, name)
        with open(path, 'wb') as f:
            f.write(data)
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    def nginx(self, **kwargs):
        locations = ('location /slow/ {\n    limit_rate 2m;\n}\n'
                     'location /nostore/ {\n'
                     '    add_header Cache-Control no-store;\n}\n')
        self.server = self.useFixture(nginx.NginxFixture(
            self.root, locations=locations, **kwargs))
        return self.server

    def dest(self, name):
        return os.path.join(self.dest_dir, name)

    def fetch(self, name, dest_name, cache=None, **kwargs):
        kwargs.setdefault('force_raw', False)
        return (cache or self.cache).fetch_image(
            self.server.url_for(name), self.dest(dest_name), **kwargs)

    def gets(self, name, count=0):
        """(status, body bytes, If-None-Match sent) of each GET of name."""
        return [(e['status'], e['body_bytes_sent'],
                 e['if_none_match'] is not None)
                for e in self.server.requests_log(count=count)
                if e['method'] == 'GET' and e['uri'] == '/' + name]

    def read(self, path):
        with open(path, 'rb') as f:
            return f.read()

    def cache_names(self):
        return sorted(n for n in os.listdir(self.master_dir)
                      if n != cache_locks.LOCK_DIR)


class OneDownloadTestCase(CacheTestCase):

    def setUp(self):
        super().setUp()
        self.put('slow/disk.img')
        # 4 MiB at 2 MiB/s: every caller arrives during the download.
        self.nginx()

    def assertAllLinked(self, results):
        masters = {result['master'] for result in results}
        self.assertEqual(1, len(masters))
        master = masters.pop()
        for result in results:
            self.assertTrue(os.path.samefile(master, result['path']))
        self.assertEqual(len(results) + 1, os.stat(master).st_nlink)
        self.assertEqual(IMAGE, self.read(master))

    def test_threads_cause_one_download(self):
        callers = 8
        barrier = threading.Barrier(callers)
        results, errors = [], []

        def _caller(number):
            barrier.wait()
            try:
                result = self.fetch('slow/disk.img', 'dest%d' % number)
                results.append(result._asdict())
            except Exception as error:
                errors.append(error)

        threads = [threading.Thread(target=_caller, args=(n,))
                   for n in range(callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual([], errors)
        self.assertEqual(1, len([r for r in results if not r['hit']]))
        self.assertAllLinked(results)
        # One GET, and no revalidation by those who waited for it.
        self.assertEqual([(200, len(IMAGE), False)],
                         self.gets('slow/disk.img', count=1))

    def test_processes_cause_one_download(self):
        callers = 5
        children = []
        for number in range(callers):
            child = subprocess.Popen(
                [sys.executable, '-c', _CHILD, self.master_dir,
                 self.server.url_for('slow/disk.img'),
                 self.dest('dest%d' % number)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.addCleanup(child.wait)
            self.addCleanup(child.kill)
            children.append(child)
        for child in children:
            self.assertEqual('ready\n', child.stdout.readline())
        for child in children:
            child.stdin.write('go\n')
            child.stdin.flush()
        results = []
        for child in children:
            line = child.stdout.readline()
            self.assertEqual(0, child.wait(60), line)
            results.append(json.loads(line))
        self.assertEqual(1, len([r for r in results if not r['hit']]))
        self.assertAllLinked(results)
        self.assertEqual([(200, len(IMAGE), False)],
                         self.gets('slow/disk.img', count=1))


class FreshnessTestCase(CacheTestCase):

    def setUp(self):
        super().setUp()
        self.path = self.put('disk.img', mtime=time.time() - 3600)
        self.nginx()

    def test_unchanged_image_is_revalidated_without_a_body(self):
        first = self.fetch('disk.img', 'one')
        second = self.fetch('disk.img', 'two')
        self.assertTrue(second.hit)
        self.assertTrue(os.path.samefile(first.path, second.path))
        self.assertEqual([(200, len(IMAGE), False), (304, 0, True)],
                         self.gets('disk.img', count=4))

    def test_changed_image_is_downloaded_again(self):
        first = self.fetch('disk.img', 'one')
        new_image = _image()
        self.put('disk.img', new_image, mtime=time.time())
        second = self.fetch('disk.img', 'two')
        self.assertFalse(second.hit)
        self.assertEqual(first.master, second.master)
        self.assertEqual(new_image, self.read(second.path))
        self.assertEqual(new_image, self.read(second.master))
        # A caller's copy of the old version is left as it was.
        self.assertEqual(IMAGE, self.read(first.path))
        # The download, the conditional GET told of the change (its body
        # left unread), the download of the new version.
        self.assertEqual([(200, False), (200, True), (200, False)],
                         [(get[0], get[2]) for get in self.gets('disk.img')])
        self.assertTrue(self.fetch('disk.img', 'three').hit)

    def test_no_store_is_not_cached(self):
        self.put('nostore/disk.img')
        for name in ('one', 'two'):
            result = self.fetch('nostore/disk.img', name)
            self.assertIsNone(result.master)
            self.assertEqual(IMAGE, self.read(result.path))
        self.assertEqual([], self.cache_names())
        self.assertEqual(2, len(self.gets('nostore/disk.img', count=4)))

    def test_is_unchanged(self):
        service = http.HttpImageService()
        url = self.server.url_for('disk.img')
        properties = service.show(url)['properties']
        self.assertTrue(service.is_unchanged(url, etag=properties['etag']))
        self.assertTrue(service.is_unchanged(
            url, last_modified=properties['last_modified']))
        self.assertFalse(service.is_unchanged(url, etag='"other"'))
        self.assertFalse(service.is_unchanged(url))
        self.assertRaises(exception.ImageRefValidationFailed,
                          service.is_unchanged,
                          self.server.url_for('missing.img'), etag='"x"')
        statuses = [(e['status'], e['body_bytes_sent'])
                    for e in self.server.requests_log(count=5)
                    if e['method'] == 'GET']
        self.assertEqual([(304, 0), (304, 0)], statuses[:2])
        self.assertEqual(200, statuses[2][0])

    def test_conversion_to_raw_is_cached(self):
        qcow2 = images.make_image('qcow2', self.root)
        name = os.path.basename(qcow2)
        first = self.fetch(name, 'one', force_raw=True)
        second = self.fetch(name, 'two', force_raw=True)
        self.assertEqual(('raw', False, True),
                         (first.format, first.hit, second.hit))
        self.assertTrue(first.master.endswith(image_cache.RAW_SUFFIX))
        self.assertEqual(images.DEFAULT_SIZE, os.stat(second.path).st_size)
        images.qemu_img('compare', '-f', 'raw', '-F', 'qcow2',
                        second.path, qcow2)
        self.assertEqual([200, 304], [get[0] for get in self.gets(name)])


class EvictionTestCase(CacheTestCase):

    MIB_IMAGE = _image(units.Mi)

    def setUp(self):
        super().setUp()
        for name in ('a', 'b', 'c'):
            self.put(name, self.MIB_IMAGE)
        self.nginx()

    def use(self, name, cache):
        """Fetch an image and drop the caller's link to it."""
        result = self.fetch(name, name, cache=cache)
        os.unlink(result.path)
        return result

    def test_least_recently_used_go_over_the_cap(self):
        # Room for two unused masters.
        cache = image_cache.ImageCache(self.master_dir, int(2.5 * units.Mi),
                                       3600)
        masters = {name: self.use(name, cache).master
                   for name in ('a', 'b')}
        self.use('a', cache)          # a is now used more recently than b
        masters['c'] = self.use('c', cache).master
        self.assertFalse(os.path.exists(masters['b']))
        self.assertTrue(os.path.exists(masters['a']))
        self.assertTrue(os.path.exists(masters['c']))
        self.assertFalse(os.path.exists(masters['b'] + '.meta'))
        self.use('b', cache)          # downloaded again; a goes
        self.assertFalse(os.path.exists(masters['a']))
        self.assertEqual(2, len(self.gets('b')))

    def test_expired_go_first(self):
        cache = image_cache.ImageCache(self.master_dir, 10 ** 10, 600)
        old = self.use('a', cache).master
        new = self.use('b', cache).master
        os.utime(old, (time.time() - 700, time.time() - 700))
        cache.clean_up()
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(new))

    def test_linked_master_is_never_evicted(self):
        cache = image_cache.ImageCache(self.master_dir, 0, 0)
        kept = self.fetch('a', 'a', cache=cache)
        self.assertEqual(0, cache.clean_up(amount=10 ** 10))
        self.assertTrue(os.path.exists(kept.master))
        self.assertTrue(self.fetch('a', 'again', cache=cache).hit)
        os.unlink(kept.path)
        os.unlink(self.dest('again'))
        self.assertGreater(cache.clean_up(), 0)
        self.assertEqual([], self.cache_names())


class OciTestCase(CacheTestCase):

    def test_tags_of_one_artifact_share_a_master(self):
        self.config(permit_fallback_to_http_transport=True, group='oci')
        server = self.useFixture(registry.RegistryFixture())
        oci_push.push_disk_image_fixture(server, 'os/disk', ['v1', 'stable'],
                                         {'amd64': {'raw': IMAGE}})
        first = self.cache.fetch_image(server.oci_url('os/disk', 'v1'),
                                       self.dest('one'), force_raw=False)
        second = self.cache.fetch_image(
            server.oci_url('os/disk', 'stable'), self.dest('two'),
            force_raw=False)
        self.assertEqual((False, True), (first.hit, second.hit))
        digest = oci_push.sha256_digest(IMAGE)
        self.assertEqual('oci-' + digest.replace(':', '-'),
                         os.path.basename(first.master))
        self.assertEqual(digest, second.checksum)
        self.assertTrue(os.path.samefile(first.path, second.path))
        self.assertEqual(IMAGE, self.read(second.path))


class CrashTestCase(CacheTestCase):

    def setUp(self):
        super().setUp()
        self.put('disk.img')
        self.nginx()
        # The download to kill: its server stalls after more than one
        # transfer buffer ([download]chunk_size) until the test ends, so
        # the child is killed mid-download with data in its temp file,
        # whatever the load of the machine.
        self.faults = self.useFixture(faults.FaultServerFixture())
        self.stalled_url = self.faults.add('/big.img', body=IMAGE * 2)
        self.faults.script('/big.img', [faults.stall(len(IMAGE) + 1)],
                           method='GET')

    def child(self, url, dest_name):
        """A caller in its own process, ready to fetch."""
        child = subprocess.Popen(
            [sys.executable, '-c', _CHILD, self.master_dir, url,
             self.dest(dest_name)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        self.assertEqual('ready\n', child.stdout.readline())
        return child

    def test_killed_fetch_leaves_nothing_a_restart_does_not_clean(self):
        child = self.child(self.stalled_url, 'killed')
        child.stdin.write('go\n')
        child.stdin.flush()

        def _part_with_data():
            return [name for name in os.listdir(self.master_dir)
                    if name.endswith(fileutils.PART_SUFFIX)
                    and os.path.getsize(os.path.join(self.master_dir, name))]

        leftovers = _wait_for(_part_with_data)
        self.assertEqual(1, len(self.faults.requests_for('/big.img', 'GET')))
        # While the download runs, its temp file is left alone.
        self.assertEqual([], self.cache.remove_leftovers())
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        self.assertEqual(leftovers, _part_with_data())
        self.assertFalse(os.path.exists(self.dest('killed')))
        # The next process to use the cache starts by removing them.
        restarted = self.child(self.server.url_for('disk.img'), 'after')
        restarted.stdin.write('go\n')
        restarted.stdin.flush()
        result = json.loads(restarted.stdout.readline())
        self.assertEqual(0, restarted.wait(60))
        master = os.path.basename(result['master'])
        self.assertEqual([master, master + '.meta'], self.cache_names())
        # The killed download left no master: the image is downloaded.
        again = self.cache.fetch_image(self.stalled_url, self.dest('again'),
                                       force_raw=False)
        self.assertFalse(again.hit)
        self.assertEqual(IMAGE * 2, self.read(again.path))


def _wait_for(check, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError('not seen in %ss: %r' % (timeout, check))
