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
"""The Cinder host module, called as Cinder's volume drivers call it.

Every call uses the signature of ``cinder.image.image_utils`` (positional
where Cinder's callers pass positionally). The functions that read or
write an image go through an image service with the shape of Cinder's
(:mod:`.cinder_like`) in front of a real Glance; the others run the real
qemu-img.
"""

import gzip
import json
import os
import uuid

import fixtures
from oslo_config import cfg
from oslo_context import context as oslo_context
from oslo_utils import imageutils
from oslo_utils import units

from ironic_images import exception
from ironic_images.hosts import cinder as image_utils
from ironic_images.tests import base
from ironic_images.tests.functional import cinder_like
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import glance

SIZE = 4 * units.Mi
BLOCKSIZE = '1M'  # Cinder's volume_dd_blocksize: accepted, not used


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def qemu_info(path, fmt):
    """qemu-img's own view, read without the code under test."""
    return json.loads(images.qemu_img('info', '-f', fmt, '--output=json',
                                      path))


class CinderHostTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        tmp = self.useFixture(fixtures.TempDir()).path
        self.work = os.path.join(tmp, 'work')
        self.dest_dir = os.path.join(tmp, 'dest')
        self.scratch = os.path.join(tmp, 'scratch')
        for path in (self.work, self.dest_dir, self.scratch):
            os.mkdir(path)
        self.config(tempdir=self.scratch)
        # What the Cinder page of the docs has operators permit.
        self.config(permitted_formats=['raw', 'gpt', 'iso', 'qcow2', 'vmdk',
                                       'vhd', 'vhdx'], group='image_format')
        self.context = oslo_context.RequestContext(
            user_id='cinder-user-%s' % uuid.uuid4().hex[:8],
            project_id='cinder-project')

    def dest(self, name='volume'):
        return os.path.join(self.dest_dir, name)

    def raw_reference(self):
        return images.make_image('raw', self.work, size=SIZE)

    def assertSameDisk(self, expected_raw, path, fmt='raw'):
        images.qemu_img('compare', '-f', 'raw', '-F', fmt, expected_raw,
                        path)

    def assertNothingLeft(self):
        self.assertEqual([], os.listdir(self.dest_dir))
        self.assertEqual([], os.listdir(self.scratch))


class GlanceCinderTestCase(CinderHostTestCase):
    """A Glance shared by the class, behind a Cinder-like image service."""

    def setUp(self):
        super().setUp()
        self.glance = self.useFixture(
            glance.GlanceFixture(share_with=type(self)))
        self.image_service = cinder_like.CinderLikeImageService(
            self.glance.url)
        self.addCleanup(self.image_service.close)
        self.glance.reset_log()

    def make_image(self, kind='qcow2', data=None, **properties):
        """An image in Glance; its bytes are made by qemu-img by default."""
        if data is None:
            data = read(images.make_image(kind, self.work, size=SIZE))
        properties.setdefault('disk_format', images.KINDS[kind][0])
        properties.setdefault('name', 'cinder-host-test')
        return self.glance.create_image(data, **properties)['id']

    def file_gets(self, image_id):
        return [e for e in self.glance.requests_log()
                if e['method'] == 'GET'
                and e['path'] == '/v2/images/%s/file' % image_id]

    def downloads(self):
        return [c for c in self.image_service.calls if c[0] == 'download']


class TestFetch(GlanceCinderTestCase):

    def test_fetch_downloads_through_cinders_image_service(self):
        data = read(images.make_image('qcow2', self.work, size=SIZE))
        image_id = self.make_image(data=data)
        image_utils.fetch(self.context, self.image_service, image_id,
                          self.dest(), None, None)
        self.assertEqual(data, read(self.dest()))
        self.assertEqual([('download', image_id)], self.downloads())
        self.assertEqual(1, len(self.file_gets(image_id)))

    def test_fetch_verifies_what_cinders_service_wrote(self):
        # Cinder's service writes what Glance sends; the multihash Glance
        # holds refuses bytes changed behind it.
        image_id = self.make_image()
        path = self.glance.image_path(image_id)
        with open(path, 'r+b') as stored:
            stored.seek(os.path.getsize(path) // 2)
            stored.write(b'corrupt')
        self.assertRaises(exception.ImageChecksumError, image_utils.fetch,
                          self.context, self.image_service, image_id,
                          self.dest(), None, None)
        self.assertNothingLeft()

    def test_fetch_passes_cinders_exceptions_on(self):
        missing = str(uuid.uuid4())
        self.assertRaises(cinder_like.ImageNotFound, image_utils.fetch,
                          self.context, self.image_service, missing,
                          self.dest(), None, None)
        self.assertNothingLeft()

    def test_fetch_verify_image(self):
        image_id = self.make_image('vmdk-stream-optimized')
        image_utils.fetch_verify_image(self.context, self.image_service,
                                       image_id, self.dest(), None, None,
                                       1, True)
        self.assertEqual('vmdk', qemu_info(self.dest(), 'vmdk')['format'])

    def test_fetch_verify_image_refuses_what_does_not_fit(self):
        big = self.work + '/big.qcow2'
        images.qemu_img('create', '-f', 'qcow2', big, '3G')
        image_id = self.make_image(data=read(big))
        self.assertRaises(exception.ImageUnacceptable,
                          image_utils.fetch_verify_image, self.context,
                          self.image_service, image_id, self.dest(),
                          size=2)
        self.assertNothingLeft()

    def test_fetch_verify_image_refuses_an_unsafe_image(self):
        # Glance refuses to store an unsafe qcow2, unless compressed.
        image_id = self.make_image(data=gzip.compress(read(
            images.make_image('qcow2-backing-file', self.work))),
            disk_format='qcow2', container_format='compressed')
        self.assertRaises(exception.InvalidImage,
                          image_utils.fetch_verify_image, self.context,
                          self.image_service, image_id, self.dest())
        self.assertNothingLeft()


class TestFetchToVolume(GlanceCinderTestCase):

    def test_fetch_to_volume_format(self):
        reference = self.raw_reference()
        image_id = self.make_image('qcow2')
        for volume_format in ('raw', 'qcow2', 'vmdk', 'vpc', 'vhdx'):
            dest = self.dest(volume_format)
            image_utils.fetch_to_volume_format(
                self.context, self.image_service, image_id, dest,
                volume_format, BLOCKSIZE, None, None, None, 1, True)
            self.assertEqual(volume_format,
                             qemu_info(dest, volume_format)['format'])
            self.assertSameDisk(reference, dest, volume_format)
        self.assertEqual(5, len(self.file_gets(image_id)))

    def test_fetch_to_volume_format_with_a_subformat(self):
        image_id = self.make_image('raw', data=read(self.raw_reference()))
        image_utils.fetch_to_volume_format(
            self.context, self.image_service, image_id, self.dest(), 'vmdk',
            BLOCKSIZE, volume_subformat='streamOptimized',
            disable_sparse=True)
        info = qemu_info(self.dest(), 'vmdk')
        self.assertEqual('streamOptimized',
                         info['format-specific']['data']['create-type'])

    def test_fetch_to_raw(self):
        reference = self.raw_reference()
        data = gzip.compress(read(images.make_image('qcow2', self.work,
                                                    size=SIZE)))
        image_id = self.make_image(data=data, disk_format='qcow2',
                                   container_format='compressed')
        image_utils.fetch_to_raw(self.context, self.image_service, image_id,
                                 self.dest(), BLOCKSIZE, size=1)
        self.assertSameDisk(reference, self.dest())
        self.assertEqual(['volume'], os.listdir(self.dest_dir))

    def test_fetch_to_vhd(self):
        image_id = self.make_image('qcow2')
        image_utils.fetch_to_vhd(self.context, self.image_service, image_id,
                                 self.dest(), BLOCKSIZE)
        self.assertSameDisk(self.raw_reference(), self.dest(), 'vpc')

    def test_declared_format_must_match(self):
        image_id = self.make_image(data=read(self.raw_reference()),
                                   disk_format='qcow2')
        error = self.assertRaises(
            exception.ImageUnacceptable, image_utils.fetch_to_raw,
            self.context, self.image_service, image_id, self.dest(),
            BLOCKSIZE)
        self.assertEqual('format_match', error.kwargs['check'])
        self.assertNothingLeft()

    def test_unsafe_image_is_refused(self):
        # Glance refuses to store an unsafe qcow2, unless compressed.
        image_id = self.make_image(data=gzip.compress(read(
            images.make_image('qcow2-data-file', self.work))),
            disk_format='qcow2', container_format='compressed')
        self.assertRaises(exception.InvalidImage, image_utils.fetch_to_raw,
                          self.context, self.image_service, image_id,
                          self.dest(), BLOCKSIZE)
        self.assertNothingLeft()

    def test_image_too_big_for_the_volume(self):
        big = self.work + '/big.qcow2'
        images.qemu_img('create', '-f', 'qcow2', big, '3G')
        image_id = self.make_image(data=read(big))
        self.assertRaises(exception.ImageUnacceptable,
                          image_utils.fetch_to_raw, self.context,
                          self.image_service, image_id, self.dest(),
                          BLOCKSIZE, size=2)
        self.assertNothingLeft()

    def test_cinders_image_conversion_disable_is_honoured(self):
        self.cfg_fixture.register_opt(
            cfg.BoolOpt('image_conversion_disable', default=False))
        self.config(image_conversion_disable=True)
        image_id = self.make_image('qcow2')
        self.assertRaises(exception.ImageUnacceptable,
                          image_utils.fetch_to_raw, self.context,
                          self.image_service, image_id, self.dest(),
                          BLOCKSIZE)
        self.assertEqual([], self.downloads())
        image_utils.fetch_to_volume_format(
            self.context, self.image_service, image_id, self.dest(),
            'qcow2', BLOCKSIZE)
        self.assertSameDisk(self.raw_reference(), self.dest(), 'qcow2')

    def test_temporary_images(self):
        image_id = self.make_image('qcow2')
        with image_utils.TemporaryImages.fetch(
                self.image_service, self.context, image_id,
                'backend-1') as tmp:
            self.assertTrue(tmp.endswith('backend-1'))
            self.assertEqual(os.path.dirname(tmp), self.scratch)
            self.assertEqual(tmp, image_utils.TemporaryImages
                             .for_image_service(self.image_service)
                             .get(self.context, image_id))
            self.assertEqual('qcow2', qemu_info(tmp, 'qcow2')['format'])
            image_utils.fetch_to_raw(self.context, self.image_service,
                                     image_id, self.dest(), BLOCKSIZE)
            image_utils.fetch_to_volume_format(
                self.context, self.image_service, image_id,
                self.dest('vmdk'), 'vmdk', BLOCKSIZE)
        # One download for the three.
        self.assertEqual(1, len(self.file_gets(image_id)))
        self.assertEqual(1, len(self.downloads()))
        self.assertSameDisk(self.raw_reference(), self.dest())
        self.assertSameDisk(self.raw_reference(), self.dest('vmdk'), 'vmdk')
        self.assertFalse(os.path.exists(tmp))
        self.assertIsNone(image_utils.TemporaryImages.for_image_service(
            self.image_service).get(self.context, image_id))

    def test_verify_glance_image_signature(self):
        unsigned = self.make_image('qcow2')
        self.assertFalse(image_utils.verify_glance_image_signature(
            self.context, self.image_service, unsigned, self.dest()))
        # Glance checks a signature on upload (with Barbican): the signed
        # image has no data, which Cinder's check does not read anyway.
        signed = self.glance.create_image(
            None, name='signed', disk_format='qcow2',
            img_signature='c2lnbmF0dXJl',
            img_signature_hash_method='SHA-256',
            img_signature_key_type='RSA-PSS',
            img_signature_certificate_uuid=str(uuid.uuid4()))['id']
        self.assertRaises(exception.ImageUnacceptable,
                          image_utils.verify_glance_image_signature,
                          self.context, self.image_service, signed,
                          self.dest())


class TestUploadVolume(GlanceCinderTestCase):

    def queued_image(self, disk_format, container_format='bare'):
        image = self.glance.create_image(None, name='upload-test',
                                         disk_format=disk_format,
                                         container_format=container_format)
        return {'id': image['id'], 'disk_format': disk_format,
                'container_format': container_format}

    def stored(self, image_meta, name):
        path = self.dest(name)
        with open(path, 'wb') as f:
            f.write(read(self.glance.image_path(image_meta['id'])))
        return path

    def test_upload_converts_to_the_images_format(self):
        volume = self.raw_reference()
        image_meta = self.queued_image('qcow2')
        image_utils.upload_volume(self.context, self.image_service,
                                  image_meta, volume, 'raw', True, True,
                                  None, None)
        shown = self.glance.get_image(image_meta['id'])
        self.assertEqual('active', shown['status'])
        self.assertSameDisk(volume, self.stored(image_meta, 'up.qcow2'),
                            'qcow2')
        self.assertEqual([('update', image_meta['id'])],
                         [c for c in self.image_service.calls
                          if c[0] == 'update'])
        self.assertEqual([], os.listdir(self.scratch))

    def test_upload_without_conversion(self):
        volume = self.raw_reference()
        image_meta = self.queued_image('raw')
        image_utils.upload_volume(self.context, self.image_service,
                                  image_meta, volume)
        self.assertEqual(read(volume),
                         read(self.glance.image_path(image_meta['id'])))
        # Newer Cinder hands an open file of the volume.
        other = self.queued_image('raw')
        with open(volume, 'rb') as volume_fd:
            image_utils.upload_volume(self.context, self.image_service,
                                      other, volume, volume_fd=volume_fd)
        self.assertEqual(read(volume),
                         read(self.glance.image_path(other['id'])))

    def test_upload_of_a_qcow2_volume(self):
        volume = images.make_image('qcow2', self.work, size=SIZE)
        image_meta = self.queued_image('vmdk')
        image_utils.upload_volume(self.context, self.image_service,
                                  image_meta, volume, volume_format='qcow2')
        self.assertSameDisk(self.raw_reference(),
                            self.stored(image_meta, 'up.vmdk'), 'vmdk')

    def test_upload_to_a_compressed_container(self):
        volume = self.raw_reference()
        image_meta = self.queued_image('qcow2', 'compressed')
        image_utils.upload_volume(self.context, self.image_service,
                                  image_meta, volume)
        stored = read(self.glance.image_path(image_meta['id']))
        path = self.dest('up.qcow2')
        with open(path, 'wb') as f:
            f.write(gzip.decompress(stored))
        self.assertSameDisk(volume, path, 'qcow2')

    def test_a_raw_volume_is_never_read_as_another_format(self):
        # A volume holds what its user wrote, a qcow2 header pointing at a
        # host file among them: declared raw, it is uploaded as raw data.
        volume = images.make_image('qcow2-backing-file', self.work,
                                   size=SIZE)
        image_meta = self.queued_image('qcow2')
        image_utils.upload_volume(self.context, self.image_service,
                                  image_meta, volume, 'raw')
        uploaded = self.stored(image_meta, 'up.qcow2')
        self.assertNotIn('backing-filename', qemu_info(uploaded, 'qcow2'))
        self.assertSameDisk(volume, uploaded, 'qcow2')


class TestLocalFunctions(CinderHostTestCase):
    """The functions that touch no server: real qemu-img and files."""

    def test_convert_image(self):
        source = images.make_image('qcow2', self.work, size=SIZE)
        image_utils.convert_image(source, self.dest(), 'raw')
        self.assertSameDisk(self.raw_reference(), self.dest())
        data = image_utils.qemu_img_info(source)
        image_utils.convert_image(source, self.dest('vpc'), 'vpc', None,
                                  'qcow2', True, None, None, None, False,
                                  None, 'image-id', data)
        self.assertSameDisk(self.raw_reference(), self.dest('vpc'), 'vpc')

    def test_convert_image_refuses_unsafe_and_encrypted(self):
        flat = images.make_image('vmdk-monolithic-flat', self.work)
        self.assertRaises(exception.InvalidImage, image_utils.convert_image,
                          flat, self.dest(), 'raw')
        source = images.make_image('qcow2', self.work, size=SIZE)
        self.assertRaises(exception.OperationNotSupported,
                          image_utils.convert_image, source, self.dest(),
                          'raw', cipher_spec={'cipher_alg': 'aes-256'},
                          passphrase_file='/nonexistent')
        self.assertNothingLeft()

    def test_qemu_img_info(self):
        source = images.make_image('qcow2', self.work, size=SIZE)
        info = image_utils.qemu_img_info(source, True, False)
        self.assertEqual('qcow2', info.file_format)
        self.assertEqual(SIZE, info.virtual_size)
        # Declared raw (a volume), a qcow2 header in it is not read.
        self.assertEqual('raw', image_utils.qemu_img_info(
            source, img_format='raw').file_format)

    def test_qemu_img_info_refuses_backing_files(self):
        backed = images.make_image('qcow2-backing-file', self.work)
        self.assertRaises(exception.InvalidImage, image_utils.qemu_img_info,
                          backed)
        self.assertRaises(exception.OperationNotSupported,
                          image_utils.qemu_img_info, backed,
                          allow_qcow2_backing_file=True)

    def test_check_image_format(self):
        source = images.make_image('qcow2', self.work, size=SIZE)
        image_utils.check_image_format(source, 'qcow2', 'image-id', None,
                                       True)
        self.assertRaises(exception.ImageUnacceptable,
                          image_utils.check_image_format, source, 'vmdk')
        data = image_utils.qemu_img_info(source)
        image_utils.check_image_format(source, 'qcow2', data=data)
        self.assertRaises(exception.ImageUnacceptable,
                          image_utils.check_image_format, source, 'raw',
                          data=data)

    def test_check_vmdk_image(self):
        sparse = images.make_image('vmdk-monolithic-sparse', self.work)
        image_utils.check_vmdk_image('image-id',
                                     image_utils.qemu_img_info(sparse))
        # qemu-img's own view of a flat descriptor (the code under test
        # refuses to run qemu-img on it).
        flat = images.make_image('vmdk-monolithic-flat', self.work)
        data = imageutils.QemuImgInfo(images.qemu_img(
            'info', '-f', 'vmdk', '--output=json', flat), format='json')
        self.assertRaises(exception.ImageUnacceptable,
                          image_utils.check_vmdk_image, 'image-id', data)

    def test_resize_image(self):
        raw = self.raw_reference()
        image_utils.resize_image(raw, 1, False, 'raw')
        self.assertEqual(units.Gi, os.path.getsize(raw))
        qcow2 = images.make_image('qcow2', self.work, size=SIZE)
        image_utils.resize_image(qcow2, 2)
        self.assertEqual(2 * units.Gi,
                         qemu_info(qcow2, 'qcow2')['virtual-size'])

    def test_check_virtual_size(self):
        self.assertEqual(2, image_utils.check_virtual_size(
            units.Gi + 1, 2, 'image-id'))
        self.assertRaises(exception.ImageUnacceptable,
                          image_utils.check_virtual_size, 2 * units.Gi + 1,
                          2, 'image-id')

    def test_check_available_space(self):
        free = os.statvfs(self.dest_dir)
        image_utils.check_available_space(self.dest_dir, units.Mi,
                                          'image-id')
        self.assertRaises(exception.InsufficientDiskSpace,
                          image_utils.check_available_space,
                          self.dest(), 2 * free.f_blocks * free.f_frsize,
                          'image-id')

    def test_qemu_img_version(self):
        version = image_utils.get_qemu_img_version()
        self.assertEqual(images.qemu_img('--version').split()[2],
                         '.'.join(map(str, version)))
        image_utils.check_qemu_img_version('1.0')
        self.assertRaises(exception.OperationNotSupported,
                          image_utils.check_qemu_img_version, '999.0')

    def test_format_names(self):
        self.assertEqual(['raw', 'vpc', 'parallels', 'qcow2'],
                         [image_utils.fixup_disk_format(f)
                          for f in ('iso', 'vhd', 'ploop', 'qcow2')])
        self.assertEqual(['vhd', 'ploop', 'qcow2'],
                         [image_utils.from_qemu_img_disk_format(f)
                          for f in ('vpc', 'parallels', 'qcow2')])

    def test_temporary_file_and_dir(self):
        with image_utils.temporary_file(prefix='vol_upload_') as tmp:
            self.assertEqual(self.scratch, os.path.dirname(tmp))
            self.assertTrue(os.path.basename(tmp).startswith('vol_upload_'))
        self.assertFalse(os.path.exists(tmp))
        with image_utils.temporary_dir() as tmp_dir:
            self.assertEqual(self.scratch, os.path.dirname(tmp_dir))
            with open(os.path.join(tmp_dir, 'x'), 'wb') as f:
                f.write(b'x')
        self.assertFalse(os.path.exists(tmp_dir))
