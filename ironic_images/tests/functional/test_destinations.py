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

"""Images onto real block devices: loop devices over files of 0xFF.

Every fetch path that a Cinder volume or a node's local disk goes through
(fetch_to_raw, fetch_to_volume_format, fetch, convert_image, the cache
hand-out, the Nova-style download), over nginx and file://. After each:
the device holds the image's disk, its holes read as zeros (the 0xFF
under them is gone), the bytes past the disk are untouched, the node is
still a block device and /dev holds no new file. A refused image leaves
the device untouched; a failure after the first byte says the device is
undefined.
"""

import os
import stat
from unittest import mock

import fixtures
from oslo_utils import units
import zstandard

from ironic_images import api
from ironic_images import exception
from ironic_images.fetch import targets
from ironic_images import image_cache
from ironic_images import image_utils
from ironic_images.qemu import convert as qemu_convert
from ironic_images.tests import base
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import devices
from ironic_images.tests.functional.servers import nginx

SIZE = 8 * units.Mi
DEVICE_SIZE = 16 * units.Mi


def regular_files_in_dev():
    """The regular files directly in /dev.

    A device node replaced by a file is one; the nodes other tests make
    are not.
    """
    found = set()
    for name in os.listdir('/dev'):
        try:
            if stat.S_ISREG(os.lstat(os.path.join('/dev', name)).st_mode):
                found.add(name)
        except FileNotFoundError:
            pass
    return found


def read(path):
    with open(path, 'rb') as f:
        return f.read()


class DeviceTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        self.loop = self.useFixture(
            devices.LoopDeviceFixture(DEVICE_SIZE))
        self.dev = self.loop.path
        self.server = self.useFixture(nginx.NginxFixture(self.images_dir))
        self.work = self.useFixture(fixtures.TempDir()).path
        self.scratch = self.useFixture(fixtures.TempDir()).path
        self.config(tempdir=self.scratch)
        self.files_in_dev = regular_files_in_dev()
        self.addCleanup(self.assertNoFileInDev)

    def assertNoFileInDev(self):
        self.assertEqual(self.files_in_dev, regular_files_in_dev())

    def publish(self, kind, size=SIZE, compress=False):
        """An image of ``kind`` in the served directory: its name."""
        path = images.make_image(kind, self.work, size=size)
        name = os.path.basename(path)
        data = read(path)
        if compress:
            data = zstandard.ZstdCompressor().compress(data)
            name += '.zst'
        with open(os.path.join(self.images_dir, name), 'wb') as f:
            f.write(data)
        return name

    def href(self, name, scheme='http'):
        if scheme == 'http':
            return self.server.url_for(name)
        return 'file://' + os.path.join(self.images_dir, name)

    def disk(self, size=SIZE):
        """The raw disk every test image of ``size`` holds."""
        return read(images.make_raw(self.work, size))

    def assertStillADevice(self):
        self.assertTrue(stat.S_ISBLK(os.stat(self.dev).st_mode))
        self.assertNoFileInDev()
        # Nothing was left in the temp directory either.
        self.assertEqual([], os.listdir(self.scratch))

    def assertDeviceHolds(self, disk):
        data = self.loop.device.read()
        self.assertStillADevice()
        if data[:len(disk)] != disk:
            first = next(i for i, (a, b) in enumerate(zip(data, disk))
                         if a != b)
            self.fail('the device differs from the disk at byte %d: %r, '
                      'not %r' % (first, data[first:first + 8],
                                  disk[first:first + 8]))
        self.assertEqual(devices.FILL * (DEVICE_SIZE - len(disk)),
                         data[len(disk):], 'the device past the disk')

    def assertUntouched(self):
        self.assertStillADevice()
        self.assertEqual(devices.FILL * DEVICE_SIZE,
                         self.loop.device.read(), 'the device changed')

    def no_temp_file(self):
        """Fail the test if a fetch makes a temp file for the device."""
        return self.useFixture(fixtures.MockPatchObject(
            targets.InPlaceTarget, '_open_temp',
            side_effect=AssertionError('a temp file was made'))).mock


class TestFetchOntoDevice(DeviceTestCase):

    def test_raw_over_http_fetch_to_raw(self):
        self.no_temp_file()
        fetched = image_utils.fetch_to_raw(
            None, self.href(self.publish('raw')), self.dev)
        self.assertDeviceHolds(self.disk())
        self.assertEqual(('raw', SIZE, self.dev),
                         (fetched.format, fetched.virtual_size,
                          fetched.path))

    def test_sparse_raw_over_file_holes_are_zeros(self):
        # make_raw's image is 8 MiB of which 256 KiB are data: every
        # hole must have overwritten the 0xFF.
        self.no_temp_file()
        image_utils.fetch_to_raw(
            None, self.href(self.publish('raw'), 'file'), self.dev)
        self.assertDeviceHolds(self.disk())

    def test_qcow2_streamed_over_http(self):
        self.no_temp_file()
        fetched = image_utils.fetch_to_raw(
            None, self.href(self.publish('qcow2')), self.dev)
        self.assertDeviceHolds(self.disk())
        self.assertEqual(('raw', 'qcow2'),
                         (fetched.format, fetched.source_format))

    def test_compressed_qcow2_streamed_over_file(self):
        # Compressed clusters wait in a spill file: in [DEFAULT]tempdir,
        # never beside the device.
        self.no_temp_file()
        image_utils.fetch_to_raw(
            None, self.href(self.publish('qcow2-compressed'), 'file'),
            self.dev)
        self.assertDeviceHolds(self.disk())

    def test_qemu_img_only_format_over_http(self):
        self.config(permitted_formats=['raw', 'vhdx'], group='image_format')
        fetched = image_utils.fetch_to_raw(
            None, self.href(self.publish('vhdx')), self.dev)
        self.assertDeviceHolds(self.disk())
        self.assertEqual(('raw', 'vhdx'),
                         (fetched.format, fetched.source_format))

    def test_zstd_raw_over_http(self):
        self.no_temp_file()
        fetched = image_utils.fetch_to_raw(
            None, self.href(self.publish('raw', compress=True)), self.dev)
        self.assertDeviceHolds(self.disk())
        self.assertEqual('zstd', fetched.compression)

    def test_fetch_writes_the_image_as_it_is(self):
        name = self.publish('qcow2')
        image_utils.fetch(None, self.href(name, 'file'), self.dev)
        self.assertDeviceHolds(read(os.path.join(self.images_dir, name)))

    def test_fetch_to_volume_format_raw_qcow2_over_http(self):
        self.no_temp_file()
        fetched = image_utils.fetch_to_volume_format(
            None, self.href(self.publish('qcow2')), self.dev, 'raw', size=1)
        self.assertDeviceHolds(self.disk())
        self.assertEqual(self.dev, fetched.path)

    def test_fetch_to_volume_format_raw_zstd_over_file(self):
        image_utils.fetch_to_volume_format(
            None, self.href(self.publish('raw', compress=True), 'file'),
            self.dev, 'raw')
        self.assertDeviceHolds(self.disk())

    def test_fetch_to_volume_format_through_qemu_img(self):
        # A qcow2 of 4 KiB clusters is not streamed: qemu-img converts it
        # from a temp file onto the device (-n).
        path = os.path.join(self.images_dir, 'small-clusters.qcow2')
        images.qemu_img('convert', '-f', 'raw', '-O', 'qcow2', '-o',
                        'cluster_size=4096', images.make_raw(self.work, SIZE),
                        path)
        image_utils.fetch_to_volume_format(
            None, self.href('small-clusters.qcow2'), self.dev, 'raw')
        self.assertDeviceHolds(self.disk())

    def test_fetch_to_volume_format_qcow2_volume(self):
        # Another volume format than raw: converted by qemu-img onto the
        # device, which then holds a qcow2 of the same disk.
        image_utils.fetch_to_volume_format(
            None, self.href(self.publish('raw')), self.dev, 'qcow2')
        self.assertStillADevice()
        images.qemu_img('compare', '-f', 'raw', '-F', 'qcow2',
                        images.make_raw(self.work, SIZE), self.dev)

    def test_a_block_of_temporary_images(self):
        # Cinder's TemporaryImages: the image fetched once, then copied
        # from that file onto the device, holes zeroed.
        href = self.href(self.publish('raw'))
        with image_utils.TemporaryImages.fetch(None, None, href):
            image_utils.fetch_to_volume_format(None, href, self.dev, 'raw')
        self.assertDeviceHolds(self.disk())

    def test_nova_download_to_a_device(self):
        name = self.publish('qcow2')
        api.API().download(None, self.href(name), dest_path=self.dev)
        self.assertDeviceHolds(read(os.path.join(self.images_dir, name)))

    def test_cache_hands_a_master_out_onto_a_device(self):
        cache = image_cache.ImageCache(
            master_dir=os.path.join(self.work, 'master'))
        href = self.href(self.publish('qcow2'))
        cache.fetch_image(href, os.path.join(self.work, 'first'))
        self.loop.device.fill()
        result = cache.fetch_image(href, self.dev)
        self.assertTrue(result.hit)
        self.assertDeviceHolds(self.disk())

    def test_convert_image_onto_a_device(self):
        source = images.make_image('qcow2', self.work, size=SIZE)
        image_utils.convert_image(source, self.dev, 'raw', 'qcow2')
        self.assertDeviceHolds(self.disk())

    def test_a_symlink_to_the_device_is_followed(self):
        link = os.path.join(self.work, 'by-id')
        os.symlink(self.dev, link)
        image_utils.fetch_to_raw(None, self.href(self.publish('qcow2')),
                                 link)
        self.assertTrue(os.path.islink(link))
        self.assertDeviceHolds(self.disk())


class TestRefusedOntoDevice(DeviceTestCase):

    def test_qcow2_larger_than_the_device(self):
        name = self.publish('qcow2', size=2 * DEVICE_SIZE)
        error = self.assertRaises(exception.ImageUnacceptable,
                                  image_utils.fetch_to_raw, None,
                                  self.href(name), self.dev)
        self.assertNotIsInstance(error, exception.DestinationUndefined)
        self.assertIn('does not fit on %s' % self.dev, str(error))
        self.assertUntouched()

    def test_raw_larger_than_the_device(self):
        # Its declared size (Content-Length) is checked first.
        name = self.publish('raw', size=2 * DEVICE_SIZE)
        error = self.assertRaises(exception.ImageUnacceptable,
                                  image_utils.fetch, None,
                                  self.href(name), self.dev)
        self.assertNotIsInstance(error, exception.DestinationUndefined)
        self.assertUntouched()

    def test_qemu_img_format_larger_than_the_device(self):
        self.config(permitted_formats=['raw', 'vhdx'], group='image_format')
        name = self.publish('vhdx', size=2 * DEVICE_SIZE)
        error = self.assertRaises(exception.ImageUnacceptable,
                                  image_utils.fetch_to_raw, None,
                                  self.href(name), self.dev)
        self.assertNotIsInstance(error, exception.DestinationUndefined)
        self.assertUntouched()

    def test_compressed_raw_larger_than_the_device_is_undefined(self):
        # Its size is known only at its end: the device's end stops it.
        name = self.publish('raw', size=2 * DEVICE_SIZE, compress=True)
        error = self.assertRaises(exception.DestinationUndefined,
                                  image_utils.fetch_to_raw, None,
                                  self.href(name), self.dev)
        self.assertIsInstance(error, exception.ImageUnacceptable)
        self.assertIn('the contents of %s are undefined' % self.dev,
                      str(error))
        self.assertStillADevice()

    def test_volume_size_checked_before_writing(self):
        name = self.publish('qcow2', size=2 * units.Gi)
        self.assertRaises(exception.ImageUnacceptable,
                          image_utils.fetch_to_volume_format, None,
                          self.href(name), self.dev, 'raw', size=1)
        self.assertUntouched()

    def test_hostile_image(self):
        name = self.publish('qcow2-backing-file')
        error = self.assertRaises(exception.InvalidImage,
                                  image_utils.fetch_to_raw, None,
                                  self.href(name), self.dev)
        self.assertNotIsInstance(error, exception.DestinationUndefined)
        self.assertUntouched()

    def test_hostile_image_as_it_is(self):
        name = self.publish('qcow2-backing-file')
        self.assertRaises(exception.InvalidImage, image_utils.fetch, None,
                          self.href(name, 'file'), self.dev)
        self.assertUntouched()

    def test_checksum_mismatch_of_a_held_image(self):
        # The whole qcow2 (less than a MiB) is held until the inspector
        # decides, and it decides at the end, after the checksum.
        name = self.publish('qcow2')
        error = self.assertRaises(
            exception.ImageChecksumError, image_utils.fetch_to_raw, None,
            self.href(name), self.dev, checksum='sha256:' + '0' * 64)
        self.assertNotIsInstance(error, exception.DestinationUndefined)
        self.assertUntouched()

    def test_checksum_mismatch_says_the_device_is_undefined(self):
        # 12 MiB of random bytes: written before the last byte arrives.
        name = self.publish('garbage', size=12 * units.Mi)
        error = self.assertRaises(
            exception.ImageChecksumError, image_utils.fetch_to_raw, None,
            self.href(name), self.dev, checksum='sha256:' + '0' * 64)
        self.assertIsInstance(error, exception.DestinationUndefined)
        self.assertIn('the contents of %s are undefined' % self.dev,
                      str(error))
        self.assertEqual('ImageChecksumError', error.kwargs['cause'])
        self.assertStillADevice()

    def test_device_in_use_is_refused_before_the_download(self):
        fd = os.open(self.dev, os.O_RDONLY | os.O_EXCL)
        self.addCleanup(os.close, fd)
        self.server.reset_log()
        error = self.assertRaises(exception.InvalidDestination,
                                  image_utils.fetch_to_raw, None,
                                  self.href(self.publish('raw')), self.dev)
        self.assertIn('in use', str(error))
        self.assertEqual([], [r for r in self.server.requests_log()
                              if r.get('method') == 'GET'])
        self.assertUntouched()


class TestQemuImgOntoDevice(DeviceTestCase):

    def test_the_device_is_written_by_qemu_img_without_create(self):
        self.config(permitted_formats=['raw', 'vhdx'], group='image_format')
        with mock.patch.object(qemu_convert, '_run_conversion',
                               wraps=qemu_convert._run_conversion) as run:
            image_utils.fetch_to_raw(
                None, self.href(self.publish('vhdx')), self.dev)
        cmd = run.call_args[0][0]
        self.assertIn('-n', cmd)
        self.assertEqual(self.dev, cmd[-1])
        self.assertDeviceHolds(self.disk())
