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

"""Unit tests of the master-image cache: locks, eviction, sidecars, flow.

The image services and fetcher.fetch are fakes here; the functional
tests run the cache against nginx, with threads and processes.
"""

import contextlib
import errno
import hashlib
import os
import subprocess
import sys
import threading
import time
from unittest import mock

import fixtures

from ironic_images.cache import cache
from ironic_images.cache import eviction as cache_eviction
from ironic_images.cache import locks as cache_locks
from ironic_images.cache import masters as cache_masters
from ironic_images.cache import outcomes
from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images.fetch import fetcher
from ironic_images import image_cache
from ironic_images.image_service import base as service_base
from ironic_images.image_service import http as http_service
from ironic_images import image_utils
from ironic_images.tests import base

DATA = b'master image bytes ' * 1000
NEW_DATA = b'a newer version of the image ' * 700
SHA256 = hashlib.sha256(DATA).hexdigest()
GLANCE_ID = '1be26c0b-03f2-4d2e-ae87-c02d7f33c123'
HOUR = 3600.0

_HOLD_LOCK_SCRIPT = """
import sys
from ironic_images.cache import locks as cache_locks
lock = cache_locks.image_lock(sys.argv[1], sys.argv[2])
lock.acquire()
print('locked', flush=True)
sys.stdin.readline()
"""


class CacheDirTestCase(base.TestCase):
    """A cache directory with its lock directory."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.master_dir = self.useFixture(fixtures.TempDir()).path
        self.other_dir = self.useFixture(fixtures.TempDir()).path
        os.mkdir(os.path.join(self.master_dir, cache_locks.LOCK_DIR))

    def put(self, name, data=DATA, last_used=None, directory=None):
        path = os.path.join(directory or self.master_dir, name)
        with open(path, 'wb') as f:
            f.write(data)
        if last_used is not None:
            os.utime(path, (last_used, last_used))
        return path

    def names(self):
        return sorted(name for name in os.listdir(self.master_dir)
                      if name != cache_locks.LOCK_DIR)

    def read(self, path):
        with open(path, 'rb') as f:
            return f.read()

    def hold_in_thread(self, name):
        """Hold a lock in another thread until the returned event is set."""
        held, release = threading.Event(), threading.Event()

        def _hold():
            with cache_locks.image_lock(self.master_dir, name):
                held.set()
                release.wait(30)

        thread = threading.Thread(target=_hold)
        thread.start()
        self.addCleanup(thread.join)
        self.addCleanup(release.set)
        self.assertTrue(held.wait(10))
        return release


class LocksTestCase(CacheDirTestCase):

    def test_try_lock_fails_while_another_thread_holds_it(self):
        release = self.hold_in_thread('url-a')
        with cache_locks.try_lock(self.master_dir, 'url-a') as held:
            self.assertFalse(held)
        with cache_locks.try_lock(self.master_dir, 'url-b') as held:
            self.assertTrue(held)
        release.set()
        # The holder's release lets the next one in.
        with cache_locks.image_lock(self.master_dir, 'url-a'):
            pass
        with cache_locks.try_lock(self.master_dir, 'url-a') as held:
            self.assertTrue(held)

    def test_blocking_waiter_enters_after_release(self):
        events = []
        entered = threading.Event()
        lock = cache_locks.image_lock(self.master_dir, 'url-a')
        lock.acquire()

        def _wait():
            with cache_locks.image_lock(self.master_dir, 'url-a'):
                events.append('waiter')
                entered.set()

        thread = threading.Thread(target=_wait)
        thread.start()
        self.assertFalse(entered.wait(0.2))
        events.append('holder done')
        lock.release()
        thread.join(10)
        self.assertEqual(['holder done', 'waiter'], events)

    def test_lock_held_by_another_process(self):
        child = subprocess.Popen(
            [sys.executable, '-c', _HOLD_LOCK_SCRIPT, self.master_dir,
             'url-a'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        self.assertEqual('locked\n', child.stdout.readline())
        with cache_locks.try_lock(self.master_dir, 'url-a') as held:
            self.assertFalse(held)
        child.stdin.write('\n')
        child.stdin.flush()
        child.wait(10)
        with cache_locks.try_lock(self.master_dir, 'url-a') as held:
            self.assertTrue(held)

    def test_lock_dies_with_a_killed_process(self):
        child = subprocess.Popen(
            [sys.executable, '-c', _HOLD_LOCK_SCRIPT, self.master_dir,
             'url-a'], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        self.addCleanup(child.wait)
        self.assertEqual('locked\n', child.stdout.readline())
        child.kill()
        child.wait(10)
        with cache_locks.try_lock(self.master_dir, 'url-a') as held:
            self.assertTrue(held)

    def test_download_slots_bound_concurrency(self):
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(
                cache_locks.download_slot(self.master_dir, 2))
            second = stack.enter_context(
                cache_locks.download_slot(self.master_dir, 2))
            self.assertEqual({0, 1}, {first, second})
            got = []
            done = threading.Event()

            def _third():
                with cache_locks.download_slot(self.master_dir, 2) as slot:
                    got.append(slot)
                    done.set()

            thread = threading.Thread(target=_third)
            thread.start()
            self.assertFalse(done.wait(0.2))
        thread.join(10)
        self.assertEqual(1, len(got))
        self.assertIn(got[0], (0, 1))


def _master(name, last_used, allocated=100, links=1):
    return cache_eviction.Master(name, '/cache/' + name, allocated,
                                 allocated, last_used, links, (1, name))


class EvictionOrderTestCase(base.TestCase):

    NOW = 1000000.0

    def setUp(self):
        super().setUp()
        self.masters = [
            _master('fresh', self.NOW - 10),
            _master('old', self.NOW - 3 * HOUR),
            _master('older', self.NOW - 5 * HOUR),
            _master('recent', self.NOW - 0.5 * HOUR),
            _master('linked-old', self.NOW - 9 * HOUR, links=2),
        ]
        self.removed = []

    def remove(self, master):
        self.removed.append(master.name)
        return True

    def evict(self, cache_size, amount=None, ttl=2 * HOUR,
              remove=None):
        return cache_eviction.evict(self.masters, self.NOW, ttl, cache_size,
                                    amount, remove or self.remove)

    def test_order(self):
        expired, others = cache_eviction.eviction_order(self.masters,
                                                        self.NOW, 2 * HOUR)
        self.assertEqual(['older', 'old'], [m.name for m in expired])
        self.assertEqual(['recent', 'fresh'], [m.name for m in others])

    def test_expired_go_even_under_the_cap(self):
        removed, total, freed = self.evict(cache_size=10000)
        self.assertEqual(['older', 'old'], self.removed)
        self.assertEqual(300, total)
        self.assertEqual(200, freed)
        self.assertEqual(self.removed, [m.name for m in removed])

    def test_least_recently_used_go_down_to_the_cap(self):
        _removed, total, _freed = self.evict(cache_size=200)
        self.assertEqual(['older', 'old', 'recent'], self.removed)
        self.assertEqual(200, total)

    def test_linked_master_never_goes(self):
        _removed, total, _freed = self.evict(cache_size=0, ttl=0)
        self.assertEqual(['older', 'old', 'recent', 'fresh'], self.removed)
        self.assertEqual(100, total)

    def test_amount_stops_early_among_expired(self):
        _removed, _total, freed = self.evict(cache_size=10000, amount=50)
        self.assertEqual(['older'], self.removed)
        self.assertEqual(100, freed)

    def test_amount_reaches_into_recent_ones(self):
        _removed, _total, freed = self.evict(cache_size=10000, amount=250)
        self.assertEqual(['older', 'old', 'recent'], self.removed)
        self.assertEqual(300, freed)

    def test_a_master_that_cannot_go_is_skipped(self):
        def remove(master):
            if master.name == 'older':
                return False
            self.removed.append(master.name)
            return True

        _removed, total, _freed = self.evict(cache_size=300, remove=remove)
        self.assertEqual(['old', 'recent'], self.removed)
        self.assertEqual(300, total)

    def test_leftover_names(self):
        cases = {
            '.url-ab.raw.k3j2_x.part': 'url-ab.raw',
            '..url-ab.raw.k3j2_x.part.a_b1.part': 'url-ab.raw',
            '.url-ab.meta.zz12.part': 'url-ab',
            '.glance-1.x.part': 'glance-1',
            'url-ab': None,
            'url-ab.meta': None,
            '.locks': None,
            '.x.part': None,
        }
        for name, owner in cases.items():
            self.assertEqual(owner, cache_eviction.lock_name_of_leftover(
                name), name)


class CleanUpTestCase(CacheDirTestCase):

    def test_ttl_then_lru_on_disk(self):
        now = time.time()
        self.put('url-old', last_used=now - 3 * HOUR)
        self.put('url-old.meta', b'{}')
        self.put('url-mid', last_used=now - 0.5 * HOUR)
        self.put('url-new', last_used=now - 60)
        each = cache_eviction.list_masters(self.master_dir)[0].allocated
        freed = cache_eviction.clean_up(self.master_dir, 2 * HOUR,
                                        2 * each)
        self.assertEqual(each, freed)
        self.assertEqual(['url-mid', 'url-new'], self.names())
        freed = cache_eviction.clean_up(self.master_dir, 2 * HOUR, each)
        self.assertEqual(['url-new'], self.names())

    def test_linked_master_is_never_evicted(self):
        path = self.put('url-linked', last_used=time.time() - 9 * HOUR)
        os.link(path, os.path.join(self.other_dir, 'dest'))
        self.put('url-free', last_used=time.time())
        freed = cache_eviction.clean_up(self.master_dir, 0, 0,
                                        amount=10 ** 9)
        self.assertEqual(['url-linked'], self.names())
        self.assertGreater(freed, 0)

    def test_master_that_cannot_be_removed_is_skipped(self):
        # E.g. a master of another service's user in a sticky directory.
        now = time.time()
        stuck = self.put('url-stuck', last_used=now - 9 * HOUR)
        self.put('url-old', last_used=now - 8 * HOUR)
        unlink = os.unlink

        def _unlink(path, *args, **kwargs):
            if path == stuck:
                raise PermissionError(errno.EPERM, 'not permitted', path)
            return unlink(path, *args, **kwargs)

        with mock.patch.object(os, 'unlink', autospec=True,
                               side_effect=_unlink):
            freed = cache_eviction.clean_up(self.master_dir, HOUR, 0)
        self.assertEqual(['url-stuck'], self.names())
        self.assertEqual(os.stat(stuck).st_blocks * 512, freed)

    def test_master_being_used_is_skipped(self):
        self.put('url-busy', last_used=time.time() - 9 * HOUR)
        release = self.hold_in_thread('url-busy')
        cache_eviction.clean_up(self.master_dir, 0, 0)
        self.assertEqual(['url-busy'], self.names())
        release.set()

    def test_hidden_files_are_not_masters(self):
        self.put('.url-a.abc123.part')
        self.put('url-a.meta', b'{}')
        os.mkdir(os.path.join(self.master_dir, 'a-directory'))
        self.assertEqual([], cache_eviction.list_masters(self.master_dir))

    def test_remove_leftovers(self):
        self.put('url-a')
        self.put('url-a.meta', b'{}')
        self.put('url-orphan.meta', b'{}')
        self.put('.url-a.abc123.part')
        self.put('..url-b.raw.abc123.part.def456.part')
        self.put('.url-busy.abc123.part')
        self.put('.url-busy.meta.abc123.part')
        release = self.hold_in_thread('url-busy')
        removed = cache_eviction.remove_leftovers(self.master_dir)
        self.assertEqual(['..url-b.raw.abc123.part.def456.part',
                          '.url-a.abc123.part', 'url-orphan.meta'],
                         sorted(removed))
        self.assertEqual(['.url-busy.abc123.part',
                          '.url-busy.meta.abc123.part', 'url-a',
                          'url-a.meta'], self.names())
        release.set()

    def test_remove_leftovers_of_a_missing_directory(self):
        self.assertEqual([], cache_eviction.remove_leftovers(
            os.path.join(self.master_dir, 'missing')))


class FakeService(service_base.BaseImageService):
    """A driver that is only asked what the cache asks."""

    def validate_href(self, image_href):
        raise AssertionError('the cache never validates')

    def download(self, image_href, image_file, checksum=None,
                 checksum_algo=None):
        raise AssertionError('the cache downloads through fetch')


class FakeHttpService(http_service.HttpImageService):
    """Stands for HttpImageService: show() and is_unchanged()."""

    def __init__(self, etag='"v1"', last_modified=None, no_cache=False,
                 unchanged=True):
        super().__init__()
        self.etag = etag
        self.last_modified = last_modified
        self.no_cache = no_cache
        self.unchanged = unchanged
        self.shows = 0
        self.revalidations = []

    def show(self, href):
        self.shows += 1
        return {'size': len(DATA), 'no_cache': self.no_cache,
                'properties': {'etag': self.etag,
                               'last_modified': self.last_modified}}

    def is_unchanged(self, href, etag=None, last_modified=None,
                     fingerprint=None):
        self.revalidations.append((etag, last_modified))
        return self.unchanged


class FakeGlanceService(FakeHttpService):
    """Stands for GlanceImageService: an id's content never changes."""

    def resolve(self, image_href, cpu_arch=None):
        image_id = image_href.rpartition('/')[2]
        return service_base.ResolvedImage(image_href, self.show(image_href),
                                          'glance-' + image_id)


class FakeLocalService(FakeService):
    """Stands for FileImageService: images that are local files."""

    is_local = True

    def show(self, href):
        raise AssertionError('a local image needs no lookup')


class FakeOtherService(FakeService):
    """A third-party driver: show() only."""

    def __init__(self, updated_at='2024-01-01T00:00:00'):
        super().__init__()
        self.updated_at = updated_at

    def show(self, href):
        return {'size': len(DATA), 'updated_at': self.updated_at,
                'properties': {}}


class MastersTestCase(CacheDirTestCase):

    def test_meta_round_trip(self):
        master = self.put('url-a')
        cache_masters.write_meta(master, {
            'validated_at': 1.5, 'formats': ['qcow2'],
            'checksums': ['sha256:' + SHA256], 'size': len(DATA)},
            durable=True)
        meta = cache_masters.read_meta(master)
        self.assertEqual(['qcow2'], meta['formats'])
        cache_masters.write_meta(master, dict(meta, validated_at=2.5),
                                 durable=False)
        self.assertEqual(2.5, cache_masters.read_meta(master)[
            'validated_at'])
        self.assertEqual(['url-a', 'url-a.meta'], self.names())

    def test_meta_of_another_file_is_ignored(self):
        master = self.put('url-a')
        cache_masters.write_meta(master, {
            'validated_at': 1.5, 'formats': [], 'checksums': [],
            'size': len(DATA)}, durable=True)
        os.unlink(master)
        self.put('url-a', NEW_DATA)
        self.assertIsNone(cache_masters.read_meta(master))

    def test_bad_meta_is_ignored(self):
        master = self.put('url-a')
        for text in (b'not json', b'[]', b'{"version": 1}'):
            self.put('url-a.meta', text)
            self.assertIsNone(cache_masters.read_meta(master))
        self.assertIsNone(cache_masters.read_meta(
            os.path.join(self.master_dir, 'missing')))

    @staticmethod
    def source(service, href='http://h/x', immutable=False):
        return cache_masters.Source('http', 'url-x', href, service, None,
                                    immutable)

    def test_validators(self):
        http = FakeHttpService()
        nothing = {'etag': None, 'last_modified': None, 'fingerprint': None}
        self.assertEqual(nothing, cache_masters.validators(
            self.source(http, immutable=True), {}))
        self.assertEqual(dict(nothing, etag='"v1"'), cache_masters.validators(
            self.source(http), http.show('x')))
        self.assertIsNone(cache_masters.validators(
            self.source(http), {'properties': {}}))
        self.assertIsNone(cache_masters.validators(
            self.source(http, immutable=True), {'no_cache': True}))
        other = FakeOtherService()
        value = cache_masters.validators(
            self.source(other), other.show('x'))['fingerprint']
        self.assertIn('2024-01-01', value)
        # The size alone does not tell versions apart.
        self.assertIsNone(cache_masters.validators(
            self.source(other), {'size': 10}))

    def test_unchanged(self):
        http = FakeHttpService(unchanged=False)
        meta = {'etag': '"v1"', 'last_modified': 'Mon, 01 Jan 2024'}
        self.assertFalse(cache_masters.unchanged(self.source(http), meta))
        self.assertEqual([('"v1"', 'Mon, 01 Jan 2024')], http.revalidations)
        other = FakeOtherService()
        meta = {'fingerprint': service_base.fingerprint_of(other.show('x'))}
        source = self.source(other, 's3://b/x')
        self.assertTrue(cache_masters.unchanged(source, meta))
        other.updated_at = '2025-01-01T00:00:00'
        self.assertFalse(cache_masters.unchanged(source, meta))
        self.assertFalse(cache_masters.unchanged(source, {}))

    def test_hand_out_links_and_marks_use(self):
        master = self.put('url-a', last_used=time.time() - HOUR)
        dest = self.put('dest', b'old content', directory=self.other_dir)
        cache_masters.hand_out(master, dest)
        self.assertTrue(os.path.samefile(master, dest))
        self.assertEqual(2, os.stat(master).st_nlink)
        self.assertGreater(os.stat(master).st_atime, time.time() - 60)
        self.assertLess(os.stat(master).st_mtime, time.time() - 60)
        # Already in place: nothing to do.
        cache_masters.hand_out(master, dest)
        self.assertEqual(2, os.stat(master).st_nlink)
        self.assertEqual(['dest'], os.listdir(self.other_dir))

    def test_hand_out_copies_across_filesystems(self):
        master = self.put('url-a')
        dest = os.path.join(self.other_dir, 'dest')
        with mock.patch.object(os, 'link', autospec=True,
                               side_effect=OSError(errno.EXDEV, 'xdev')):
            cache_masters.hand_out(master, dest)
        self.assertFalse(os.path.samefile(master, dest))
        self.assertEqual(DATA, self.read(dest))
        self.assertEqual(['dest'], os.listdir(self.other_dir))

    def test_taken_master_survives_eviction_before_finish(self):
        master = self.put('url-a', last_used=time.time() - 9 * HOUR)
        dest = os.path.join(self.other_dir, 'dest')
        handout = cache_masters.HandOut(master, dest)
        handout.take()
        cache_eviction.clean_up(self.master_dir, 0, 0)
        self.assertTrue(os.path.exists(master))
        self.assertFalse(os.path.exists(dest))
        handout.finish()
        self.assertTrue(os.path.samefile(master, dest))
        self.assertEqual(['dest'], os.listdir(self.other_dir))

    def test_copy_of_a_master_evicted_before_finish(self):
        master = self.put('url-a')
        dest = os.path.join(self.other_dir, 'dest')
        handout = cache_masters.HandOut(master, dest)
        with mock.patch.object(os, 'link', autospec=True,
                               side_effect=OSError(errno.EXDEV, 'xdev')):
            handout.take()
        os.unlink(master)
        handout.finish()
        self.assertEqual(DATA, self.read(dest))
        self.assertEqual(['dest'], os.listdir(self.other_dir))

    def test_taken_link_is_not_a_leftover_once_the_master_is_replaced(self):
        master = self.put('url-a')
        dest = os.path.join(self.other_dir, 'dest')
        handout = cache_masters.HandOut(master, dest)
        handout.take()
        # A new version replaces the master, then another write to the
        # same destination starts by removing the temp files nobody holds.
        os.unlink(master)
        self.put('url-a', NEW_DATA)
        self.assertEqual([], fileutils.remove_stale_parts(dest))
        handout.finish()
        self.assertEqual(DATA, self.read(dest))
        self.assertEqual(['dest'], os.listdir(self.other_dir))

    def test_copy_in_progress_is_not_a_leftover(self):
        master = self.put('url-a')
        dest = os.path.join(self.other_dir, 'dest')
        copy_range = cache_masters._copy_range
        removed = []

        def _copy_range(*args):
            # Another write to the same destination starts meanwhile.
            removed.extend(fileutils.remove_stale_parts(dest))
            return copy_range(*args)

        handout = cache_masters.HandOut(master, dest)
        with mock.patch.object(os, 'link', autospec=True,
                               side_effect=OSError(errno.EXDEV, 'xdev')):
            handout.take()
        with mock.patch.object(cache_masters, '_copy_range', autospec=True,
                               side_effect=_copy_range):
            handout.finish()
        self.assertEqual([], removed)
        self.assertEqual(DATA, self.read(dest))
        self.assertEqual(['dest'], os.listdir(self.other_dir))

    def test_abort_leaves_nothing(self):
        master = self.put('url-a')
        handout = cache_masters.HandOut(
            master, os.path.join(self.other_dir, 'dest'))
        handout.take()
        handout.abort()
        self.assertEqual([], os.listdir(self.other_dir))
        self.assertEqual(1, os.stat(master).st_nlink)

    def test_hand_out_failure_leaves_nothing(self):
        master = self.put('url-a')
        dest = os.path.join(self.other_dir, 'dest')
        with mock.patch.object(os, 'link', autospec=True,
                               side_effect=OSError(errno.EIO, 'io')):
            self.assertRaises(OSError, cache_masters.hand_out, master, dest)
        self.assertEqual([], os.listdir(self.other_dir))

    def test_copy_sparse_keeps_holes(self):
        source = os.path.join(self.master_dir, 'sparse')
        with open(source, 'wb') as f:
            f.truncate(64 * 1024 * 1024)
            f.seek(32 * 1024 * 1024)
            f.write(b'data in the middle' * 1000)
        dest = os.path.join(self.other_dir, 'copy')
        cache_masters.copy_sparse(source, dest)
        self.assertEqual(self.read(source), self.read(dest))
        self.assertLess(os.stat(dest).st_blocks * 512, 4 * 1024 * 1024)

    def test_copy_without_copy_file_range(self):
        source = self.put('url-a')
        dest = os.path.join(self.other_dir, 'copy')
        with mock.patch.object(os, 'copy_file_range', autospec=True,
                               side_effect=OSError(errno.ENOSYS, 'no')):
            cache_masters.copy_sparse(source, dest)
        self.assertEqual(DATA, self.read(dest))


class FakeOciService(FakeService):
    """Stands for OciImageService: tags resolve to one artifact."""

    def __init__(self):
        super().__init__()
        self.artifact = {
            'image_container_blob_digest': 'sha256:' + SHA256,
            'oci_image_manifest_url':
                'oci://registry.example.com/disk@sha256:' + 'ab' * 32,
            'image_size': len(DATA)}

    def resolve(self, href, cpu_arch=None):
        artifact = self.artifact
        if cpu_arch == 'aarch64':
            artifact = dict(
                artifact, image_container_blob_digest='sha256:' + 'aa' * 32,
                oci_image_manifest_url=artifact[
                    'oci_image_manifest_url'].replace('ab', 'cd'))
        if not artifact:
            raise exception.ImageNotFound(image_href=href)
        return service_base.ResolvedImage(
            artifact['oci_image_manifest_url'],
            {'size': artifact['image_size']},
            'oci-' + artifact['image_container_blob_digest'])

    def show(self, href):
        raise AssertionError('resolve() says all the cache needs')


HREF = 'http://images.example.com/disk.qcow2'


class FakeCacheTestCase(CacheDirTestCase):
    """ImageCache with fake drivers and a fake fetcher.fetch."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatchObject(cache, '_PREPARED', set()))
        self.service = FakeHttpService()
        self.useFixture(fixtures.MockPatch(
            'ironic_images.image_service.get_image_service',
            side_effect=lambda href, context=None: self.service))
        self.fetches = []
        self.fetch_errors = []
        self.content = DATA
        self.fetched_format = 'qcow2'
        # The fake masters are no disk images: qemu-img is not asked.
        self.conversions = []
        self.useFixture(fixtures.MockPatchObject(
            fetcher, 'convert_fetched', side_effect=self._fake_convert))
        self.useFixture(fixtures.MockPatchObject(
            fetcher, 'fetch', side_effect=self._fake_fetch(False)))
        self.useFixture(fixtures.MockPatchObject(
            fetcher, 'fetch_to_raw', side_effect=self._fake_fetch(True)))
        self.cache = image_cache.ImageCache(self.master_dir, 10 ** 9, HOUR)

    def _fake_fetch(self, raw):
        def _fetch(context, href, path, checksum=None, checksum_algo=None,
                   expected_format=None, image_auth_data=None,
                   progress=None):
            self.fetches.append({'href': href, 'path': path, 'raw': raw,
                                 'checksum': checksum,
                                 'expected_format': expected_format})
            if self.fetch_errors:
                raise self.fetch_errors.pop(0)
            with fileutils.atomic_write(path) as f:
                f.write(self.content)
            verified = checksum or 'sha256:%s' % hashlib.sha256(
                self.content).hexdigest()
            return image_utils.FetchedImage(
                path, len(self.content),
                'raw' if raw else self.fetched_format,
                10 * len(self.content), verified, None, None)
        return _fetch

    def _fake_convert(self, fetched, dest, out_format, image_href,
                      progress=None):
        self.conversions.append((fetched.path, dest, out_format))
        with fileutils.atomic_write(dest) as f:
            f.write(b'raw ' + self.read(fetched.path))
        if progress is not None:
            progress(fetched.size, fetched.size)
        fetched.path, fetched.virtual_size = dest, 10 * len(DATA)

    def fetch(self, dest_name='dest', href=HREF, **kwargs):
        kwargs.setdefault('force_raw', False)
        dest = os.path.join(self.other_dir, dest_name)
        return self.cache.fetch_image(href, dest, **kwargs)


class ImageCacheTestCase(FakeCacheTestCase):

    def test_miss_then_hit(self):
        first = self.fetch('one')
        second = self.fetch('two')
        self.assertFalse(first.hit)
        self.assertTrue(second.hit)
        self.assertEqual(1, len(self.fetches))
        self.assertEqual(first.master, second.master)
        self.assertEqual(3, os.stat(first.master).st_nlink)
        self.assertTrue(os.path.samefile(first.path, second.path))
        self.assertEqual(('qcow2', len(DATA)), (second.format, second.size))
        # The second call started after the download: it revalidated.
        self.assertEqual([('"v1"', None)], self.service.revalidations)
        name = 'url-' + hashlib.sha256(HREF.encode()).hexdigest()
        self.assertEqual([name, name + '.meta'], self.names())

    def test_waiter_uses_what_another_validated_meanwhile(self):
        master = self.fetch('one').master
        validated_at = cache_masters.read_meta(master)['validated_at']
        # As if this call had started before the download ended.
        with mock.patch.object(time, 'time', autospec=True,
                               return_value=validated_at - 1):
            self.assertTrue(self.fetch('two').hit)
        self.assertEqual([], self.service.revalidations)

    def test_hit_survives_a_sidecar_that_cannot_be_refreshed(self):
        # A full disk: refreshing validated_at is an optimisation, so a
        # failure to record it must not fail a hit that needs no space.
        first = self.fetch('one')
        write_meta = cache_masters.write_meta

        def _full(master, meta, durable):
            if not durable:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return write_meta(master, meta, durable)

        with mock.patch.object(cache_masters, 'write_meta', autospec=True,
                               side_effect=_full):
            second = self.fetch('two')
        self.assertTrue(second.hit)
        self.assertTrue(os.path.samefile(first.master, second.path))
        self.assertEqual(1, len(self.fetches))

    def test_changed_image_is_downloaded_again(self):
        first = self.fetch('one')
        self.service.unchanged = False
        self.content = NEW_DATA
        second = self.fetch('two')
        self.assertFalse(second.hit)
        self.assertEqual(2, len(self.fetches))
        self.assertEqual(DATA, self.read(first.path))
        self.assertEqual(NEW_DATA, self.read(second.path))
        self.assertEqual(NEW_DATA, self.read(second.master))

    def test_no_cache_bypasses_and_drops_the_master(self):
        master = self.fetch('one').master
        self.service.unchanged = False
        self.service.no_cache = True
        result = self.fetch('two')
        self.assertIsNone(result.master)
        self.assertEqual(self.fetches[-1]['path'], result.path)
        self.assertEqual([], self.names())
        self.assertFalse(os.path.exists(master))
        self.assertEqual(DATA, self.read(result.path))

    def test_no_validator_means_no_caching(self):
        self.service.etag = None
        self.assertIsNone(self.fetch('one').master)
        result = self.fetch('two')
        self.assertIsNone(result.master)
        self.assertEqual(outcomes.NO_VALIDATOR_REASON, result.reason)
        self.assertEqual(2, len(self.fetches))
        self.assertEqual([], self.names())

    def test_no_cache_says_why(self):
        self.service.no_cache = True
        result = self.fetch('one')
        self.assertEqual((None, False, outcomes.NO_CACHE_REASON),
                         (result.master, result.hit, result.reason))

    def test_local_image_touches_no_cache_directory(self):
        self.service = FakeLocalService()
        absent = os.path.join(self.other_dir, 'no-cache-here')
        local_cache = image_cache.ImageCache(absent, 10 ** 9, HOUR)
        dest = os.path.join(self.other_dir, 'dest')
        for force_raw in (False, True):
            result = local_cache.fetch_image('file:///srv/disk.img', dest,
                                             force_raw=force_raw)
            self.assertEqual((None, False, outcomes.LOCAL_REASON),
                             (result.master, result.hit, result.reason))
        self.assertEqual([False, True], [f['raw'] for f in self.fetches])
        self.assertFalse(os.path.exists(absent))
        self.assertEqual(DATA, self.read(dest))

    def test_clean_up_of_a_missing_directory_creates_nothing(self):
        absent = os.path.join(self.other_dir, 'no-cache-here')
        self.assertEqual(
            0, image_cache.ImageCache(absent, 0, 0).clean_up(10 ** 9))
        self.assertFalse(os.path.exists(absent))

    def test_raw_is_converted_from_the_cached_master(self):
        plain = self.fetch('one')
        seen = []
        raw = self.fetch('two', force_raw=True,
                         progress=lambda done, total: seen.append(done))
        self.assertEqual(1, len(self.fetches))
        self.assertEqual([(plain.master, raw.master, 'raw')],
                         self.conversions)
        self.assertEqual((True, True, 'raw'),
                         (raw.hit, raw.converted, raw.format))
        self.assertEqual(plain.master + image_cache.RAW_SUFFIX, raw.master)
        self.assertEqual(b'raw ' + DATA, self.read(raw.path))
        self.assertEqual(len(DATA) + 4, raw.size)
        self.assertIn(len(DATA), seen)
        meta = cache_masters.read_meta(raw.master)
        self.assertEqual(('raw', len(DATA) + 4),
                         (meta['format'], meta['size']))
        # Now a master of its own: a plain hit, nothing converted again.
        again = self.fetch('three', force_raw=True)
        self.assertEqual((True, False), (again.hit, again.converted))
        self.assertEqual(1, len(self.conversions))
        self.assertEqual(1, len(self.fetches))

    def test_raw_master_of_a_raw_image_is_a_copy(self):
        self.conversions = []
        self.useFixture(fixtures.MockPatchObject(
            fetcher, 'convert_fetched', side_effect=self._fake_convert))
        self.fetched_format = 'raw'
        plain = self.fetch('one')
        raw = self.fetch('two', force_raw=True)
        self.assertEqual(([], 1, True),
                         (self.conversions, len(self.fetches), raw.converted))
        self.assertEqual(DATA, self.read(raw.master))
        # Two files, not two links: a link would count as a use of both.
        self.assertFalse(os.path.samefile(plain.master, raw.master))

    def test_raw_master_is_its_own(self):
        raw = self.fetch('one', force_raw=True)
        plain = self.fetch('two')
        self.assertTrue(raw.master.endswith(image_cache.RAW_SUFFIX))
        self.assertNotEqual(raw.master, plain.master)
        self.assertEqual([True, False], [f['raw'] for f in self.fetches])
        self.assertEqual('raw', raw.format)

    def test_checksum_must_have_been_accepted(self):
        sha256 = 'sha256:' + SHA256
        sha512 = 'sha512:' + hashlib.sha512(DATA).hexdigest()
        self.fetch('one', expected_checksum=sha256)
        self.assertTrue(self.fetch('two', expected_checksum=SHA256).hit)
        third = self.fetch('three', expected_checksum=sha512)
        self.assertFalse(third.hit)
        self.assertEqual([sha256, sha512],
                         [f['checksum'] for f in self.fetches])

    def test_failed_verification_keeps_the_master(self):
        master = self.fetch('one').master
        self.fetch_errors.append(exception.ImageChecksumError(
            image_href=HREF, algorithm='sha512', expected='00', actual='11'))
        self.assertRaises(exception.ImageChecksumError, self.fetch, 'two',
                          expected_checksum='sha512:' + '0' * 128)
        self.assertTrue(self.fetch('three').hit)
        self.assertEqual(DATA, self.read(master))
        self.assertFalse(os.path.exists(os.path.join(self.other_dir, 'two')))

    def test_declared_format_must_have_been_accepted(self):
        self.fetch('one', expected_format='qcow2')
        self.assertTrue(self.fetch('two', expected_format='qcow2').hit)
        self.assertFalse(self.fetch('three', expected_format='vmdk').hit)

    def test_format_policy_of_now_applies_to_a_hit(self):
        self.fetch('one', href=GLANCE_ID)
        self.fetch('one-raw', href=GLANCE_ID, force_raw=True)
        # The operator no longer permits qcow2: the qcow2 master is not
        # handed out (downloading it again applies the policy); a master
        # converted to raw passed the policy as its source did.
        self.config(permitted_formats=['raw'], group='image_format')
        self.assertFalse(self.fetch('two', href=GLANCE_ID).hit)
        self.config(permitted_formats=['qcow2'], group='image_format')
        self.assertTrue(self.fetch('three', href=GLANCE_ID,
                                   force_raw=True).hit)
        # Nor is one declared as another format once they must match.
        self.config(require_format_match=False, group='image_format')
        self.fetch('four', href=GLANCE_ID, expected_format='vhd')
        self.config(require_format_match=True, group='image_format')
        self.assertFalse(self.fetch('five', href=GLANCE_ID,
                                    expected_format='vhd').hit)
        # The raw master was converted from the first one.
        self.assertEqual((4, 1), (len(self.fetches), len(self.conversions)))

    def test_glance_images_are_never_revalidated(self):
        self.service = FakeGlanceService()
        sha512 = 'sha512:' + hashlib.sha512(DATA).hexdigest()
        first = self.fetch('one', href=GLANCE_ID)
        shows = self.service.shows
        self.assertTrue(self.fetch('two', href='glance://' + GLANCE_ID).hit)
        self.assertEqual([], self.service.revalidations)
        # Only asked whether the caller may still have it.
        self.assertEqual(shows + 1, self.service.shows)
        self.assertEqual('glance-' + GLANCE_ID,
                         os.path.basename(first.master))
        # Fetched again for a new checksum, it keeps what it was accepted
        # with before: the content of an image id never changes.
        self.fetch('three', href=GLANCE_ID, expected_checksum=sha512)
        self.assertTrue(self.fetch('four', href=GLANCE_ID,
                                   expected_checksum='sha256:' + SHA256).hit)
        self.assertEqual(2, len(self.fetches))

    def test_glance_hit_refused_when_glance_refuses_the_caller(self):
        self.service = FakeGlanceService()
        first = self.fetch('one', href=GLANCE_ID)
        for error in (exception.ImageNotFound(image_href=GLANCE_ID),
                      exception.ImageNotAuthorized(image_href=GLANCE_ID),
                      exception.ImageUnacceptable(image_href=GLANCE_ID,
                                                  reason='deactivated')):
            with mock.patch.object(self.service, 'show', autospec=True,
                                   side_effect=error):
                self.assertRaises(type(error), self.fetch, 'two',
                                  href=GLANCE_ID)
            self.assertFalse(os.path.exists(
                os.path.join(self.other_dir, 'two')))
        # The master stays for callers Glance still shows it to.
        self.assertTrue(self.fetch('three', href=GLANCE_ID).hit)
        self.assertTrue(os.path.exists(first.master))
        self.assertEqual(1, len(self.fetches))

    def test_oci_master_is_keyed_by_layer_digest(self):
        self.service = FakeOciService()
        href = 'oci://registry.example.com/disk:latest'
        first = self.fetch('one', href=href)
        self.assertTrue(self.fetch('two', href=href).hit)
        self.assertEqual('oci-sha256-' + SHA256,
                         os.path.basename(first.master))
        self.assertEqual([self.service.artifact['oci_image_manifest_url']],
                         [f['href'] for f in self.fetches])
        self.service.artifact = {}
        self.assertRaises(exception.ImageNotFound, self.fetch, 'three',
                          href=href)

    def test_oci_artifact_is_the_callers_architecture(self):
        self.service = FakeOciService()
        href = 'oci://registry.example.com/disk:latest'
        default = self.fetch('one', href=href)
        arm = self.fetch('two', href=href, cpu_arch='aarch64')
        self.assertFalse(arm.hit)
        self.assertEqual('oci-sha256-' + 'aa' * 32,
                         os.path.basename(arm.master))
        self.assertNotEqual(default.master, arm.master)
        self.assertEqual('oci://registry.example.com/disk@sha256:'
                         + 'cd' * 32, self.fetches[-1]['href'])

    def test_other_schemes_compare_show(self):
        self.service = FakeOtherService()
        href = 's3://bucket/disk.img'
        self.fetch('one', href=href)
        self.assertTrue(self.fetch('two', href=href).hit)
        self.service.updated_at = '2025-06-01T00:00:00'
        self.assertFalse(self.fetch('three', href=href).hit)
        self.assertEqual(2, len(self.fetches))

    def test_no_room_for_a_conversion_frees_and_retries(self):
        self.put('url-stale', last_used=time.time())
        self.fetch_errors.append(exception.InsufficientDiskSpace(
            path=self.master_dir, image_href=HREF, required_mib=10,
            free_mib=5))
        result = self.fetch('one', force_raw=True)
        self.assertEqual(2, len(self.fetches))
        self.assertNotIn('url-stale', self.names())
        self.assertEqual(DATA, self.read(result.path))

    def test_no_room_and_nothing_to_evict(self):
        self.fetch_errors.append(exception.InsufficientDiskSpace(
            path=self.master_dir, image_href=HREF, required_mib=10,
            free_mib=5))
        self.assertRaises(exception.InsufficientDiskSpace, self.fetch)
        self.assertEqual(1, len(self.fetches))

    def test_room_is_made_before_a_download(self):
        self.put('url-stale', last_used=time.time())
        full = os.statvfs_result((4096, 4096, 1000, 0, 0, 100, 0, 0, 0, 255))
        with mock.patch.object(os, 'statvfs', autospec=True,
                               return_value=full):
            self.fetch()
        self.assertNotIn('url-stale', self.names())

    def test_clean_up_after_a_download(self):
        self.put('url-expired', last_used=time.time() - 2 * HOUR)
        self.fetch()
        self.assertNotIn('url-expired', self.names())

    def test_leftovers_are_removed_on_first_use(self):
        self.put('.url-crashed.abc123.part')
        self.fetch()
        self.assertNotIn('.url-crashed.abc123.part', self.names())

    def test_unwritable_destination(self):
        href = 'http://user:secret@images.example.com/disk.img'
        error = self.assertRaises(
            exception.ImageDownloadFailed, self.cache.fetch_image, href,
            os.path.join(self.other_dir, 'missing', 'dest'))
        self.assertNotIn('secret', str(error))
        self.assertIn('images.example.com', str(error))

    def test_list(self):
        href = 'http://user:secret@images.example.com/disk.img'
        result = self.fetch(href=href)
        listing = self.cache.list()
        self.assertEqual(1, len(listing))
        self.assertTrue(listing[0]['in_use'])
        self.assertNotIn('secret', listing[0]['href'])
        self.assertEqual('qcow2', listing[0]['format'])
        os.unlink(result.path)
        self.assertFalse(self.cache.list()[0]['in_use'])
        self.assertEqual([], image_cache.ImageCache(
            os.path.join(self.master_dir, 'missing')).list())

    def test_downloads_are_bounded(self):
        self.config(concurrency=1, group='download')
        active, most = [0], [0]
        lock = threading.Lock()
        fetch = fetcher.fetch.side_effect

        def _counting_fetch(*args, **kwargs):
            with lock:
                active[0] += 1
                most[0] = max(most[0], active[0])
            try:
                time.sleep(0.05)
                return fetch(*args, **kwargs)
            finally:
                with lock:
                    active[0] -= 1

        fetcher.fetch.side_effect = _counting_fetch
        threads = [threading.Thread(target=self.fetch, args=(
            'dest%d' % n, '%s?%d' % (HREF, n))) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        self.assertEqual(4, len(self.fetches))
        self.assertEqual(1, most[0])

    def test_a_symlink_to_the_cache_shares_its_locks(self):
        # Record locks belong to the process: two names for one lock file
        # must still be one lock for the threads of a process.
        link = os.path.join(self.other_dir, 'link-to-cache')
        os.symlink(self.master_dir, link)
        self.put('url-busy', last_used=time.time() - 9 * HOUR)
        release = self.hold_in_thread('url-busy')
        image_cache.ImageCache(link, 0, 0).clean_up()
        self.assertEqual(['url-busy'], self.names())
        release.set()

    def test_defaults_come_from_the_config(self):
        self.config(master_path=self.master_dir, size_mb=3, ttl_minutes=2,
                    group='image_cache')
        cache = image_cache.ImageCache()
        self.assertEqual((self.master_dir, 3 * 1024 * 1024, 120),
                         (cache.master_dir, cache.cache_size,
                          cache.cache_ttl))
