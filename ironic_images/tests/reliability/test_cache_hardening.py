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

"""The master-image cache when its directory is tampered with.

Someone who can write the cache directory (another service sharing it, a
mistaken operator, an attacker who got that far) replaces a master with a
symbolic link, gives a master another image's sidecar, or counts on two
images sharing one name; and eviction runs while a caller holds a master.
A caller must get the image it asked for, or one of our exceptions; never
another file.
"""

import json
import os
import time

import fixtures
from oslo_utils import units

from ironic_images.cache import cache
from ironic_images.cache import masters as cache_masters
from ironic_images import image_cache
from ironic_images.image_service import base as service_base
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import registry
from ironic_images.tests.reliability import base


def _image(fill):
    # Zeros first: no format signature by chance; then the image's bytes.
    return bytes(64 * units.Ki) + fill * (192 * units.Ki)


IMAGE_A = _image(b'A')
IMAGE_B = _image(b'B')
SECRET = b'the host secret, never an image\n'


class CacheHardeningTestCase(base.ReliabilityTestCase):

    def setUp(self):
        super().setUp()
        # Leftovers are cleaned once per process and directory: start as
        # a new process would.
        self.useFixture(fixtures.MockPatchObject(cache, '_PREPARED', set()))
        self.server = self.useFixture(faults.FaultServerFixture())
        self.url_a = self.server.add('/a.img', body=IMAGE_A)
        self.url_b = self.server.add('/b.img', body=IMAGE_B)
        self.master_dir = os.path.join(self.tmp, 'masters')
        self.cache = image_cache.ImageCache(self.master_dir, 10 ** 10, 3600)

    def fetch(self, url, name):
        dest = os.path.join(self.dest_dir, name)
        result = self.cache.fetch_image(url, dest, force_raw=False)
        return dest, result

    def read(self, path):
        with open(path, 'rb') as image:
            return image.read()

    def forge_meta(self, master, **changes):
        """Rewrite a master's sidecar as someone with write access could."""
        with open(cache_masters.meta_path(master)) as meta_file:
            meta = json.load(meta_file)
        meta.update(changes)
        with open(cache_masters.meta_path(master), 'w') as meta_file:
            json.dump(meta, meta_file)


class TestMasterReplacedBySymlink(CacheHardeningTestCase):

    def test_symlink_to_a_secret_is_not_handed_out(self):
        _dest, first = self.fetch(self.url_a, 'first')
        secret = os.path.join(self.tmp, 'secret')
        with open(secret, 'wb') as secret_file:
            secret_file.write(SECRET)
        os.unlink(first.master)
        os.symlink(secret, first.master)
        # The sidecar made to describe the link's target, and fresh.
        target = os.stat(secret)
        self.forge_meta(first.master, identity=[
            target.st_ino, target.st_size, target.st_mtime_ns],
            size=target.st_size, validated_at=time.time() + 3600)
        dest, second = self.fetch(self.url_a, 'second')
        self.assertFalse(os.path.islink(dest))
        self.assertEqual(IMAGE_A, self.read(dest))
        self.assertFalse(second.hit)
        # Downloaded again: the link was replaced, its target untouched.
        self.assertFalse(os.path.islink(second.master))
        self.assertEqual(SECRET, self.read(secret))

    def test_symlinked_sidecar_is_ignored(self):
        _dest, first = self.fetch(self.url_a, 'first')
        meta = cache_masters.meta_path(first.master)
        os.rename(meta, meta + '.real')
        os.symlink('/dev/zero', meta)
        self.assertIsNone(cache_masters.read_meta(first.master))
        dest, _second = self.fetch(self.url_a, 'second')
        self.assertEqual(IMAGE_A, self.read(dest))

    def test_links_in_place_of_the_cache_files_are_never_written(self):
        # A master and a sidecar replaced by links to files the service
        # may write: downloading again replaces the links, and what they
        # name stays as it was.
        _dest, first = self.fetch(self.url_a, 'first')
        victims = {}
        for path in (first.master, cache_masters.meta_path(first.master)):
            victim = path + '.victim'
            with open(victim, 'wb') as victim_file:
                victim_file.write(SECRET)
            os.unlink(path)
            os.symlink(victim, path)
            victims[path] = victim
        dest, second = self.fetch(self.url_a, 'second')
        self.assertEqual(IMAGE_A, self.read(dest))
        self.assertFalse(second.hit)
        for path, victim in victims.items():
            self.assertFalse(os.path.islink(path), path)
            self.assertEqual(SECRET, self.read(victim), victim)


class TestForgedSidecar(CacheHardeningTestCase):
    """OCI masters are never revalidated: their sidecar is all there is."""

    def test_another_images_master_and_sidecar(self):
        self.config(permit_fallback_to_http_transport=True, group='oci')
        server = self.useFixture(registry.RegistryFixture())
        hrefs = [server.oci_url('hard/disk', oci_push.push_artifact(
            server, 'hard/disk', tag, data, 'disk.raw').manifest_digest)
            for tag, data in (('a', IMAGE_A), ('b', IMAGE_B))]
        _dest, a = self.fetch(hrefs[0], 'a')
        _dest, b = self.fetch(hrefs[1], 'b')
        # A's name now holds B's inode with B's sidecar: the identity
        # (inode, size, mtime) in the sidecar matches the file beside it.
        os.link(b.master, a.master + '.new')
        os.replace(a.master + '.new', a.master)
        with open(cache_masters.meta_path(b.master), 'rb') as meta_b:
            data = meta_b.read()
        with open(cache_masters.meta_path(a.master), 'wb') as meta_a:
            meta_a.write(data)
        dest, again = self.fetch(hrefs[0], 'a-again')
        self.assertEqual(IMAGE_A, self.read(dest))
        self.assertFalse(again.hit)


class _KeyedService(service_base.BaseImageService):
    """A third-party driver whose content keys are arbitrary strings."""

    def __init__(self, key):
        super().__init__()
        self.key = key

    def resolve(self, image_href, cpu_arch=None):
        return service_base.ResolvedImage(image_href, {'size': 1}, self.key)

    def validate_href(self, image_href, secret=False):
        return self.show(image_href)

    def show(self, image_href):
        return {'size': 1, 'updated_at': None, 'properties': {}}

    def download(self, image_href, image_file, checksum=None,
                 checksum_algo=None):
        image_file.write(b'x')


class TestOneNamePerImage(CacheHardeningTestCase):

    KEYS = ['s3-bucket/disk', 's3-bucket:disk', 's3-bucket-disk',
            's3-bucket disk', 's3-bucket_disk', 's3-bucket.disk',
            'disk.raw', 'disk', 'disk.meta', '.disk', 'oci-sha256:' + 'a' * 64,
            'oci-sha256-' + 'a' * 64, 'url-' + 'b' * 64, 'key-' + 'c' * 64,
            'x' * 300, 'x' * 301,
            'glance-6b1c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3']

    def name_of(self, key, force_raw):
        service = _KeyedService(key)
        self.useFixture(fixtures.MockPatch(
            'ironic_images.image_service.get_image_service',
            return_value=service))
        source = cache_masters.identify('s3://bucket/whatever')
        return source.name + (cache.RAW_SUFFIX if force_raw else '')

    def test_two_keys_never_share_a_master(self):
        names = {}
        for key in self.KEYS:
            for force_raw in (False, True):
                name = self.name_of(key, force_raw)
                self.assertNotIn(name, names, (key, force_raw, names.get(
                    name)))
                names[name] = (key, force_raw)
                self.assertFalse(name.startswith('.'), name)
                self.assertFalse(name.endswith('.meta'), name)
                self.assertLessEqual(len(name), 255)
        # The names of the built-in drivers are kept.
        self.assertEqual('oci-sha256-' + 'a' * 64, self.name_of(
            'oci-sha256:' + 'a' * 64, False))
        self.assertEqual('glance-6b1c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3',
                         self.name_of('glance-6b1c1d2e-3f40-4a5b-8c6d-'
                                      '7e8f90a1b2c3', False))

    def test_two_hrefs_never_share_a_master(self):
        # The same path on two hosts, and a query that differs.
        other = self.useFixture(faults.FaultServerFixture())
        url_c = other.add('/a.img', body=IMAGE_B)
        url_d = self.server.add('/a.img?v=2', body=IMAGE_B)
        dest_a, a = self.fetch(self.url_a, 'a')
        dest_c, c = self.fetch(url_c, 'c')
        self.assertNotEqual(a.master, c.master)
        self.assertEqual(IMAGE_A, self.read(dest_a))
        self.assertEqual(IMAGE_B, self.read(dest_c))
        self.assertNotEqual(a.master, self.fetch(url_d, 'd')[1].master)


class TestEvictionWhileHeld(CacheHardeningTestCase):

    def test_a_linked_master_is_not_evicted(self):
        dest, held = self.fetch(self.url_a, 'held')
        tiny = image_cache.ImageCache(self.master_dir, 0, 0)
        self.assertEqual(0, tiny.clean_up(10 ** 12))
        self.assertTrue(os.path.exists(held.master))
        self.assertEqual(IMAGE_A, self.read(dest))
        os.unlink(dest)
        self.assertGreater(tiny.clean_up(), 0)
        self.assertFalse(os.path.exists(held.master))
        self.assertFalse(os.path.exists(
            cache_masters.meta_path(held.master)))

    def test_eviction_between_link_and_rename(self):
        # The lock is released once the master is linked to a temp name
        # beside the destination; eviction may run before the rename.
        tiny = image_cache.ImageCache(self.master_dir, 0, 0)
        finish = cache_masters.HandOut.finish
        freed = []

        def evict_then_finish(handout):
            freed.append(tiny.clean_up(10 ** 12))
            finish(handout)

        self.fetch(self.url_a, 'first')
        os.unlink(os.path.join(self.dest_dir, 'first'))
        self.useFixture(fixtures.MockPatchObject(
            cache_masters.HandOut, 'finish', evict_then_finish))
        dest, second = self.fetch(self.url_a, 'second')
        self.assertEqual([0], freed)
        self.assertEqual(IMAGE_A, self.read(dest))
        self.assertTrue(os.path.exists(second.master))
