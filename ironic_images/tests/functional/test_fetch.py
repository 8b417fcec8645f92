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

"""image_utils.fetch and fetch_to_raw against nginx, files and a registry.

Images are made by qemu-img (tests/functional/images.py); compressed
variants by the zstandard, gzip and lzma modules; every conversion is
checked with ``qemu-img compare``.
"""

import gzip
import hashlib
import lzma
import os
import shutil
import subprocess
import sys

import fixtures
from oslo_concurrency import processutils
from oslo_utils import units
import zstandard

from ironic_images import api
from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images import image_utils
from ironic_images.tests import base
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import glance
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import registry
from ironic_images.transfer import http_client

SIZE = 8 * units.Mi

COMPRESSORS = {
    'zst': lambda data: zstandard.ZstdCompressor().compress(data),
    'gz': gzip.compress,
    'xz': lzma.compress,
}


def sha256(data):
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def read(path):
    with open(path, 'rb') as f:
        return f.read()


class FetchTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        self.useFixture(fixtures.MockPatchObject(http_client, 'BACKOFF_BASE',
                                                 0.01))
        self.config(webserver_connection_timeout=5)
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.root = self.images_dir
        self.dest_dir = os.path.join(self.tmp, 'dest')
        os.mkdir(self.dest_dir)
        self.work = os.path.join(self.tmp, 'work')
        os.mkdir(self.work)

    def image(self, kind, name=None, compress=None):
        """Make an image of ``kind`` in the served root; return its name."""
        path = images.make_image(kind, self.work, size=SIZE)
        data = read(path)
        if compress:
            data = COMPRESSORS[compress](data)
        name = name or '%s%s' % (kind, '.' + compress if compress else '')
        with open(os.path.join(self.root, name), 'wb') as f:
            f.write(data)
        return name

    def raw_reference(self):
        """The raw image every converted test image must equal."""
        return images.make_image('raw', self.work, size=SIZE)

    def assertSameDisk(self, expected_raw, path, fmt='raw'):
        images.qemu_img('compare', '-f', 'raw', '-F', fmt, expected_raw,
                        path)

    def assertNothingLeft(self):
        self.assertEqual([], os.listdir(self.dest_dir))

    def dest(self, name='disk'):
        return os.path.join(self.dest_dir, name)


class TestFetchHttp(FetchTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(nginx.NginxFixture(self.root))

    def test_raw_is_written_sparse_and_verified(self):
        name = self.image('raw')
        data = read(os.path.join(self.root, name))
        fetched = image_utils.fetch(None, self.server.url_for(name),
                                    self.dest(), checksum=sha256(data))
        self.assertEqual(data, read(self.dest()))
        self.assertEqual('raw', fetched.format)
        self.assertEqual(sha256(data), fetched.checksum)
        self.assertEqual(self.dest(), fetched.path)
        self.assertEqual(len(data), fetched.size)
        # make_raw writes 256 KiB of pattern into 8 MiB: the rest is holes.
        self.assertLess(os.stat(self.dest()).st_blocks * 512, 2 * units.Mi)
        self.assertEqual(['disk'], os.listdir(self.dest_dir))

    def test_compressed_images_are_decompressed_in_stream(self):
        reference = read(self.raw_reference())
        for suffix in COMPRESSORS:
            name = self.image('raw', compress=suffix)
            compressed = read(os.path.join(self.root, name))
            fetched = image_utils.fetch(
                None, self.server.url_for(name), self.dest(suffix),
                checksum=sha256(compressed))
            self.assertEqual({'zst': 'zstd', 'gz': 'gzip', 'xz': 'xz'}[
                suffix], fetched.compression)
            self.assertEqual(reference, read(self.dest(suffix)), suffix)
            self.assertEqual('raw', fetched.format)

    def test_fetch_to_raw_converts_qcow2(self):
        for compress in (None, 'zst'):
            name = self.image('qcow2', compress=compress)
            fetched = image_utils.fetch_to_raw(
                None, self.server.url_for(name), self.dest(name))
            self.assertEqual('raw', fetched.format)
            self.assertEqual(SIZE, fetched.virtual_size)
            self.assertSameDisk(self.raw_reference(), self.dest(name))
        self.assertEqual(sorted(['qcow2', 'qcow2.zst']),
                         sorted(os.listdir(self.dest_dir)))

    def test_fetch_keeps_the_format(self):
        name = self.image('qcow2')
        fetched = image_utils.fetch(None, self.server.url_for(name),
                                    self.dest(), expected_format='qcow2')
        self.assertEqual('qcow2', fetched.format)
        self.assertEqual(read(os.path.join(self.root, name)),
                         read(self.dest()))

    def test_other_formats_to_raw(self):
        reference = self.raw_reference()
        for kind in ('vmdk-stream-optimized', 'vhdx', 'vpc', 'vdi'):
            self.config(permitted_formats=['raw', 'vmdk', 'vhdx', 'vhd',
                                           'vdi'], group='image_format')
            name = self.image(kind)
            image_utils.fetch_to_raw(None, self.server.url_for(name),
                                     self.dest(kind))
            self.assertSameDisk(reference, self.dest(kind))

    def test_refused_image_never_reaches_qemu_img(self):
        executed = []
        self.useFixture(fixtures.MockPatchObject(
            processutils, 'execute',
            side_effect=lambda *a, **k: executed.append(a)))
        for kind in ('qcow2-backing-file', 'qcow2-data-file',
                     'vmdk-flat-host-file', 'iso-qcow2', 'qed'):
            name = self.image(kind)
            self.assertRaises(exception.ImageUnacceptable,
                              image_utils.fetch_to_raw, None,
                              self.server.url_for(name), self.dest())
            self.assertNothingLeft()
        self.assertEqual([], executed)

    def test_declared_format_must_match(self):
        name = self.image('qcow2')
        self.assertRaises(exception.ImageUnacceptable, image_utils.fetch,
                          None, self.server.url_for(name), self.dest(),
                          expected_format='raw')
        self.assertNothingLeft()

    def test_checksum_mismatch_leaves_nothing(self):
        name = self.image('raw')
        self.assertRaises(exception.ImageChecksumError, image_utils.fetch,
                          None, self.server.url_for(name), self.dest(),
                          checksum=sha256(b'other'))
        self.assertNothingLeft()

    def test_decompression_bomb_fails_cleanly(self):
        self.config(max_decompressed_size=16, group='download')
        with open(os.path.join(self.root, 'bomb.zst'), 'wb') as f:
            f.write(zstandard.ZstdCompressor().compress(bytes(256 * units.Mi)))
        error = self.assertRaises(
            exception.ImageUnacceptable, image_utils.fetch, None,
            self.server.url_for('bomb.zst'), self.dest())
        self.assertIn('max_decompressed_size', str(error))
        self.assertNothingLeft()

    def test_not_enough_space_is_refused_before_downloading(self):
        name = self.image('raw')
        real_statvfs = os.statvfs

        def tiny(path):
            result = real_statvfs(path)
            return os.statvfs_result(
                result[:4] + (1,) + result[5:]) if path == self.dest_dir \
                else result

        self.useFixture(fixtures.MonkeyPatch('os.statvfs', tiny))
        self.server.reset_log()
        error = self.assertRaises(exception.InsufficientDiskSpace,
                                  image_utils.fetch, None,
                                  self.server.url_for(name), self.dest())
        self.assertIn(self.dest_dir, str(error))
        self.assertNotIn('GET', [r['method'] for r in
                                 self.server.requests_log()])
        self.assertNothingLeft()

    def test_file_too_large_mid_download_leaves_nothing(self):
        # RLIMIT_FSIZE makes writes past 1 MiB fail with EFBIG (Python
        # ignores SIGXFSZ), as a full disk would.
        name = self.image('raw')
        script = (
            'import resource, sys\n'
            'resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n'
            'from ironic_images.cmd import main\n'
            'sys.exit(main.main(sys.argv[1:]))\n')
        result = subprocess.run(
            [sys.executable, '-c', script, 'fetch',
             self.server.url_for(name), self.dest()],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(1, result.returncode, result.stderr)
        self.assertIn('too large', result.stderr.lower())
        self.assertNothingLeft()


class TestFetchFile(FetchTestCase):

    def test_compressed_qcow2_from_a_file(self):
        for suffix in COMPRESSORS:
            name = self.image('qcow2', compress=suffix)
            fetched = image_utils.fetch_to_raw(
                None, 'file://' + os.path.join(self.root, name),
                self.dest(suffix))
            self.assertEqual(suffix, {'zstd': 'zst', 'gzip': 'gz',
                                      'xz': 'xz'}[fetched.compression])
            self.assertSameDisk(self.raw_reference(), self.dest(suffix))

    def test_path_outside_allowed_paths_is_refused(self):
        outside = os.path.join(self.work, 'outside.img')
        shutil.copy(images.make_image('raw', self.work, size=SIZE), outside)
        self.assertRaises(exception.ImageRefValidationFailed,
                          image_utils.fetch, None, 'file://' + outside,
                          self.dest())
        self.assertNothingLeft()

    def test_volume_formats_and_temporary_images(self):
        name = self.image('qcow2')
        href = 'file://' + os.path.join(self.root, name)
        with image_utils.TemporaryImages.fetch(None, None, href) as tmp:
            self.assertEqual(read(os.path.join(self.root, name)), read(tmp))
            self.assertEqual(
                tmp, image_utils.TemporaryImages.for_image_service(
                    None).get(None, href))
            os.chmod(os.path.join(self.root, name), 0)
            # Served from the temporary copy: the source is unreadable.
            for volume_format in ('raw', 'vmdk', 'vhdx', 'qcow2'):
                dest = self.dest(volume_format)
                image_utils.fetch_to_volume_format(None, href, dest,
                                                   volume_format)
                fmt = images.qemu_img('info', '--output=json', dest)
                self.assertIn('"format": "%s"' % volume_format, fmt)
        self.assertFalse(os.path.exists(tmp))
        self.assertIsNone(image_utils.TemporaryImages.for_image_service(
            None).get(None, href))

    def test_raw_like_formats_to_other_volume_formats(self):
        # qemu-img knows a GPT disk or an ISO only as raw.
        for kind in ('gpt', 'iso'):
            source = os.path.join(self.root, self.image(kind))
            dest = self.dest(kind + '.qcow2')
            fetched = image_utils.fetch_to_volume_format(
                None, 'file://' + source, dest, 'qcow2')
            self.assertEqual('qcow2', fetched.format)
            self.assertSameDisk(source, dest, 'qcow2')


class TestFetchOci(FetchTestCase):

    def test_tag_is_resolved_and_decompressed(self):
        self.config(permit_fallback_to_http_transport=True, group='oci')
        server = self.useFixture(registry.RegistryFixture())
        raw = read(self.raw_reference())
        qcow2 = read(images.make_image('qcow2', self.work, size=SIZE))
        oci_push.push_disk_image_fixture(server, 'disk', 'v1', {
            'amd64': {'raw.zst': zstandard.ZstdCompressor().compress(raw),
                      'qcow2': qcow2},
            'arm64': {'qcow2': qcow2}})
        href = server.oci_url('disk', 'v1')
        fetched = image_utils.fetch_to_raw(None, href, self.dest(),
                                           cpu_arch='x86_64')
        self.assertEqual('zstd', fetched.compression)
        self.assertEqual(raw, read(self.dest()))
        self.assertTrue(fetched.checksum.startswith('sha256:'))
        fetched = image_utils.fetch_to_raw(None, href, self.dest('arm'),
                                           cpu_arch='aarch64')
        self.assertIsNone(fetched.compression)
        self.assertSameDisk(self.raw_reference(), self.dest('arm'))
        self.assertRaises(exception.ImageNotFound, image_utils.fetch, None,
                          href, self.dest('none'), cpu_arch='s390x')
        self.assertEqual(['arm', 'disk'], sorted(os.listdir(self.dest_dir)))
        self.assertEqual([], [n for n in os.listdir(self.dest_dir)
                              if n.endswith(fileutils.PART_SUFFIX)])


class TestFetchGlance(FetchTestCase):

    def test_uuid_to_raw_verified_by_multihash(self):
        server = self.useFixture(glance.GlanceFixture(share_with=type(self)))
        self.config(auth_type='none', endpoint_override=server.url,
                    group='glance')
        qcow2 = read(images.make_image('qcow2', self.work, size=SIZE))
        compressed = COMPRESSORS['zst'](qcow2)
        image = server.create_image(compressed, name='fetch-test',
                                    disk_format='qcow2',
                                    container_format='compressed')
        fetched = image_utils.fetch_to_raw(None, image['id'], self.dest())
        self.assertEqual('zstd', fetched.compression)
        self.assertEqual(
            'sha512:' + hashlib.sha512(compressed).hexdigest(),
            fetched.checksum)
        self.assertSameDisk(self.raw_reference(), self.dest())
        # The stored bytes change: the multihash refuses them.
        plain = server.create_image(qcow2, name='fetch-test-2',
                                    disk_format='qcow2',
                                    container_format='bare')
        with open(server.image_path(plain['id']), 'r+b') as stored:
            stored.seek(len(qcow2) - 100)
            stored.write(b'corrupt')
        self.assertRaises(exception.ImageChecksumError,
                          image_utils.fetch_to_raw, None,
                          'glance://' + plain['id'], self.dest('again'))
        self.assertEqual(['disk'], os.listdir(self.dest_dir))

    def test_upload_volume_converts_and_fills_an_image(self):
        server = self.useFixture(glance.GlanceFixture(share_with=type(self)))
        self.config(auth_type='none', endpoint_override=server.url,
                    group='glance')
        volume = self.raw_reference()
        image = api.API().create(None, {'name': 'upload-test',
                                        'disk_format': 'raw',
                                        'container_format': 'bare'})
        image_utils.upload_volume(None, image['id'], {'purpose': 'test'},
                                  volume, volume_format='qcow2')
        shown = api.API().get(None, image['id'])
        self.assertEqual('qcow2', shown['disk_format'])
        self.assertEqual('active', shown['status'])
        api.API().download(None, image['id'],
                           dest_path=self.dest('uploaded'))
        self.assertSameDisk(volume, self.dest('uploaded'), 'qcow2')
