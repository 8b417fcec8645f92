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

import os

import fixtures
from oslo_utils import units

from ironic_images import exception
from ironic_images.fetch import temporary
from ironic_images.image_service import base as service_base
from ironic_images import image_utils
from ironic_images.tests import base

# magic, version, backing file offset and size, cluster bits, size.
QCOW2_HEADER = (b'QFI\xfb' + (3).to_bytes(4, 'big') + bytes(12)
                + (16).to_bytes(4, 'big') + (units.Gi).to_bytes(8, 'big'))


class FakeService(service_base.BaseImageService):
    """A third-party style driver: writes in small pieces, no pipeline."""

    def __init__(self, images, specific=None):
        super().__init__()
        self.images = images
        self.specific = specific or {}
        self.downloads = []

    def validate_href(self, image_href):
        return self.show(image_href)

    def show(self, image_href):
        return {'size': len(self.images[image_href]), 'updated_at': None,
                'properties': {}}

    def resolve(self, image_href, cpu_arch=None):
        if image_href not in self.specific:
            return service_base.ResolvedImage(image_href)
        target = self.specific[image_href]
        if not target:
            raise exception.ImageNotFound(image_href=image_href)
        return service_base.ResolvedImage(target)

    def download(self, image_href, image_file, checksum=None,
                 checksum_algo=None, progress=None):
        self.downloads.append(image_href)
        data = self.images[image_href]
        for start in range(0, len(data), 1000):
            image_file.write(data[start:start + 1000])
        return 'sha256:fake'


class TestFetch(base.TestCase):

    def setUp(self):
        super().setUp()
        self.dest_dir = self.useFixture(fixtures.TempDir()).path
        self.dest = os.path.join(self.dest_dir, 'image')
        self.service = FakeService({
            'fake://raw': b'\x01' * 5000 + bytes(300000),
            'fake://qcow2': QCOW2_HEADER + bytes(600000),
            'fake://digest': b'\x02' * 4096,
        }, specific={'fake://tag': 'fake://digest', 'fake://none': None})
        self.useFixture(fixtures.MockPatch(
            'ironic_images.image_service.get_image_service',
            return_value=self.service))

    def test_a_driver_that_writes_small_pieces(self):
        fetched = image_utils.fetch(None, 'fake://raw', self.dest)
        with open(self.dest, 'rb') as f:
            self.assertEqual(self.service.images['fake://raw'], f.read())
        self.assertEqual('raw', fetched.format)
        self.assertEqual(305000, fetched.size)
        self.assertEqual(305000, fetched.virtual_size)
        self.assertEqual('sha256:fake', fetched.checksum)
        self.assertEqual(['image'], os.listdir(self.dest_dir))

    def test_a_kept_image_is_synced_before_the_rename(self):
        synced = []
        real_fsync = os.fsync

        def fsync(fd):
            synced.append(os.readlink('/proc/self/fd/%d' % fd))
            real_fsync(fd)

        self.useFixture(fixtures.MonkeyPatch('os.fsync', fsync))
        image_utils.fetch(None, 'fake://raw', self.dest)
        self.assertEqual(1, len([p for p in synced if '.part' in p]))
        self.assertIn(self.dest_dir, synced)

    def test_refused_format_leaves_nothing(self):
        self.config(permitted_formats=['raw'], group='image_format')
        error = self.assertRaises(exception.ImageUnacceptable,
                                  image_utils.fetch, None, 'fake://qcow2',
                                  self.dest)
        self.assertIn('permitted_formats', str(error))
        self.assertEqual([], os.listdir(self.dest_dir))

    def test_unchecked_fetch_reports_without_refusing(self):
        self.config(permitted_formats=['raw'], group='image_format')
        fetched, detected = image_utils.fetch_unchecked(
            None, 'fake://qcow2', self.dest)
        self.assertEqual('qcow2', detected.format)
        self.assertEqual(units.Gi, detected.virtual_size)
        self.assertIsNone(fetched.format)
        self.assertTrue(os.path.exists(self.dest))

    def test_unspecific_href_is_resolved(self):
        fetched = image_utils.fetch(None, 'fake://tag', self.dest)
        self.assertEqual(['fake://digest'], self.service.downloads)
        self.assertEqual('fake://digest', fetched.href)

    def test_nothing_matches(self):
        self.assertRaises(exception.ImageNotFound, image_utils.fetch, None,
                          'fake://none', self.dest, cpu_arch='s390x')

    def test_unknown_argument(self):
        self.assertRaises(TypeError, image_utils.fetch_verify_image, None,
                          'fake://raw', self.dest, colour='blue')

    def test_destination_that_cannot_be_replaced(self):
        # The rename fails (a directory is in the way): ours, not OSError.
        os.mkdir(self.dest)
        for fetch in (image_utils.fetch, image_utils.fetch_to_raw,
                      image_utils.fetch_verify_image,
                      lambda *args: image_utils.fetch_unchecked(*args)[0]):
            error = self.assertRaises(exception.ImageDownloadFailed, fetch,
                                      None, 'fake://raw', self.dest)
            self.assertIn(self.dest, str(error))
            self.assertEqual(['image'], os.listdir(self.dest_dir))
            self.assertEqual([], os.listdir(self.dest))
        self.config(tempdir=self.images_dir)
        with temporary.TemporaryImages.fetch(None, None, 'fake://raw'):
            # The copy of an image fetched for the block.
            self.assertRaises(exception.ImageDownloadFailed,
                              image_utils.fetch_to_volume_format, None,
                              'fake://raw', self.dest, 'raw')
        self.assertEqual(['image'], os.listdir(self.dest_dir))

    def test_interrupted_download_leaves_nothing(self):
        def interrupted(*args, **kwargs):
            FakeService.download(self.service, *args, **kwargs)
            raise KeyboardInterrupt()

        self.service.download = interrupted
        self.assertRaises(KeyboardInterrupt, image_utils.fetch, None,
                          'fake://raw', self.dest)
        self.assertEqual([], os.listdir(self.dest_dir))

    def test_virtual_size_over_the_volume(self):
        self.assertRaises(exception.ImageUnacceptable,
                          image_utils.fetch_verify_image, None,
                          'fake://qcow2', self.dest, size=0)
        self.assertEqual([], os.listdir(self.dest_dir))


class TestAvailableSpace(base.TestCase):

    def test_enough(self):
        image_utils.check_available_space(self.images_dir, 1, 'href')

    def test_not_enough_names_both_sizes(self):
        stat = os.statvfs(self.images_dir)
        free = stat.f_bavail * stat.f_frsize
        error = self.assertRaises(
            exception.InsufficientDiskSpace,
            image_utils.check_available_space,
            os.path.join(self.images_dir, 'file'), free + 10 * units.Gi,
            'http://user:secret@host/image')
        message = str(error)
        self.assertIn(self.images_dir, message)
        self.assertIn(str(free // units.Mi), message)
        self.assertNotIn('secret', message)

    def test_missing_directory(self):
        self.assertRaises(exception.ImageDownloadFailed,
                          image_utils.check_available_space,
                          '/nonexistent/dir/file', 1, 'href')


class TestTemporaryImages(base.TestCase):

    def test_registry_per_service(self):
        class Service:
            pass

        first, second = Service(), Service()
        registry = temporary.TemporaryImages.for_image_service(first)
        self.assertIs(registry,
                      temporary.TemporaryImages.for_image_service(first))
        self.assertIsNot(registry,
                         temporary.TemporaryImages.for_image_service(second))
        self.assertIs(temporary.TemporaryImages.for_image_service(None),
                      temporary.TemporaryImages.for_image_service(None))

    def test_temporary_file_is_removed(self):
        self.config(tempdir=self.images_dir)
        with image_utils.temporary_file(suffix='.img') as path:
            self.assertTrue(path.startswith(self.images_dir))
            self.assertTrue(path.endswith('.img'))
        self.assertFalse(os.path.exists(path))

    def test_raw_formats(self):
        self.assertEqual(('raw', 'gpt', 'iso'), image_utils.RAW_FORMATS)


class TestUploadVolume(base.TestCase):

    def test_missing_volume_is_our_error(self):
        self.config(tempdir=self.images_dir)
        error = self.assertRaises(
            exception.ImageUploadFailed, image_utils.upload_volume, None,
            '6f2d5d5e-6a55-4f4e-9d36-0f4c7a0c0e11', {},
            os.path.join(self.images_dir, 'missing'))
        self.assertIn('missing', str(error))
        self.assertEqual([], os.listdir(self.images_dir))
