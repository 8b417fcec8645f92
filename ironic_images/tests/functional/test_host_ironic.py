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

"""ironic_images.hosts.ironic called as Ironic 39's callers call it.

Every call below uses the exact signature of ``ironic.common.images`` and
``ironic.drivers.modules.image_cache`` (positional where Ironic's callers
pass positionally), against nginx, the distribution registry, Glance and
qemu-img. The ``except`` clauses are the ones Ironic's callers have.
"""

import hashlib
import os

import fixtures
from oslo_utils import units

from ironic_images.cache import cache
from ironic_images import exception
from ironic_images.hosts import ironic
from ironic_images import image_service
from ironic_images.image_service import http
from ironic_images.tests import base
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import base as base_servers
from ironic_images.tests.functional.servers import glance
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import registry
from ironic_images.transfer import http_client

SIZE = 4 * units.Mi
USER = 'puller'
PASSWORD = 'pull-s3cret'


def read(path):
    with open(path, 'rb') as f:
        return f.read()


class IronicHostTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        self.useFixture(fixtures.MockPatchObject(http_client, 'BACKOFF_BASE',
                                                 0.01))
        self.useFixture(fixtures.MockPatchObject(cache, '_PREPARED', set()))
        self.config(webserver_connection_timeout=5)
        tmp = self.useFixture(fixtures.TempDir()).path
        self.root = self.images_dir
        self.work = os.path.join(tmp, 'work')
        self.dest_dir = os.path.join(tmp, 'dest')
        self.master_dir = os.path.join(tmp, 'master')
        for directory in (self.work, self.dest_dir):
            os.mkdir(directory)
        locations = (nginx.redirect_location('/broken.img', '"broken"', 500)
                     + 'location /private/ {\n'
                     '    auth_basic "ironic-images test";\n'
                     '    auth_basic_user_file "%s";\n}\n'
                     % self._htpasswd(tmp))
        self.server = self.useFixture(nginx.NginxFixture(
            self.root, locations=locations))

    def _htpasswd(self, tmp):
        path = os.path.join(tmp, 'htpasswd')
        nginx.make_htpasswd(path, USER, PASSWORD)
        return path

    def image(self, kind, name=None):
        """Make an image of ``kind`` in the served root; return its URL."""
        path = images.make_image(kind, self.work, size=SIZE)
        name = name or kind
        os.rename(path, os.path.join(self.root, name))
        return self.server.url_for(name)

    def served(self, url):
        return read(os.path.join(self.root, url.rsplit('/', 1)[1]))

    def raw_reference(self):
        return images.make_image('raw', self.work, size=SIZE)

    def assertSameDisk(self, path, fmt='raw'):
        images.qemu_img('compare', '-f', 'raw', '-F', fmt,
                        self.raw_reference(), path)

    def assertFormat(self, fmt, path):
        info = images.qemu_img('info', '--output=json', path)
        self.assertIn('"format": "%s"' % fmt, info)

    def dest(self, name='disk'):
        return os.path.join(self.dest_dir, name)

    def downloads(self, url):
        """The GETs of ``url`` answered with the image (not a 304)."""
        uri = '/' + url.rsplit('/', 1)[1]
        return [e for e in self.server.requests_log()
                if e['method'] == 'GET' and e['uri'] == uri
                and e['status'] == 200]


class FetchTestCase(IronicHostTestCase):
    """fetch, called as Ironic calls images.fetch.

    ``fetch(context, image_href, path, force_raw=False, checksum=None,
    checksum_algo=None, image_auth_data=None)``
    """

    def test_fetch_keeps_the_format(self):
        url = self.image('qcow2')
        ironic.fetch(None, url, self.dest())
        self.assertEqual(self.served(url), read(self.dest()))

    def test_fetch_force_raw(self):
        url = self.image('qcow2')
        fetched = ironic.fetch(None, url, self.dest(), force_raw=True)
        self.assertEqual('raw', fetched.format)
        self.assertSameDisk(self.dest())

    def test_fetch_verifies_the_checksum(self):
        url = self.image('raw')
        digest = hashlib.sha256(self.served(url)).hexdigest()
        ironic.fetch(None, url, self.dest(), False, digest, 'sha256', None)
        self.assertEqual(self.served(url), read(self.dest()))

    def test_a_checksum_mismatch_is_caught_as_ironic_catches_it(self):
        url = self.image('raw')
        try:
            ironic.fetch(None, url, self.dest(), checksum='0' * 64,
                         checksum_algo='sha256')
        except exception.InvalidImage as error:
            self.assertIsInstance(error, exception.ImageChecksumError)
        else:
            self.fail('the checksum mismatch was not raised')
        self.assertEqual([], os.listdir(self.dest_dir))

    def test_fetch_passes_image_auth_data_to_a_registry(self):
        self.config(permit_fallback_to_http_transport=True, group='oci')
        server = self.useFixture(registry.RegistryFixture(
            htpasswd=(USER, PASSWORD)))
        qcow2 = read(images.make_image('qcow2', self.work, size=SIZE))
        artifact = oci_push.push_artifact(server, 'disk', 'v1', qcow2,
                                          'disk.qcow2', disktype='qcow2')
        href = server.oci_url('disk', artifact.manifest_digest)
        self.assertRaises(exception.ImageServiceAuthenticationRequired,
                          ironic.fetch, None, href, self.dest())
        ironic.fetch(None, href, self.dest(), force_raw=True,
                     image_auth_data={'username': USER,
                                      'password': PASSWORD})
        self.assertSameDisk(self.dest())


class ImageToRawTestCase(IronicHostTestCase):
    """``image_to_raw(image_href, path, path_tmp)``."""

    def test_qcow2_is_converted_and_the_temp_file_removed(self):
        path_tmp = images.make_image('qcow2', self.work, size=SIZE)
        fetched = ironic.image_to_raw('http://h/disk.qcow2', self.dest(),
                                      path_tmp)
        self.assertEqual('raw', fetched.format)
        self.assertSameDisk(self.dest())
        self.assertFalse(os.path.exists(path_tmp))

    def test_raw_and_iso_are_moved(self):
        for kind in ('raw', 'iso'):
            path_tmp = images.make_image(kind, self.work, size=SIZE)
            inode = os.stat(path_tmp).st_ino
            ironic.image_to_raw('http://h/x', self.dest(kind), path_tmp)
            self.assertEqual(inode, os.stat(self.dest(kind)).st_ino)
            self.assertFalse(os.path.exists(path_tmp))

    def test_an_unsafe_image_is_refused_before_qemu_img(self):
        for kind in ('qcow2-backing-file', 'qcow2-data-file',
                     'vmdk-flat-host-file'):
            path_tmp = images.make_image(kind, self.work, size=SIZE)
            self.assertRaises(exception.InvalidImage, ironic.image_to_raw,
                              'http://h/x', self.dest(), path_tmp)
            self.assertFalse(os.path.exists(path_tmp))
        self.assertEqual([], os.listdir(self.dest_dir))

    def test_a_format_not_permitted_is_refused(self):
        self.config(permitted_formats=['raw'], group='image_format')
        path_tmp = images.make_image('qcow2', self.work, size=SIZE)
        self.assertRaises(exception.ImageUnacceptable, ironic.image_to_raw,
                          'http://h/x', self.dest(), path_tmp)
        self.assertEqual([], os.listdir(self.dest_dir))


class ShowTestCase(IronicHostTestCase):
    """image_show and download_size.

    ``image_show(context, image_href, image_service=None,
    image_auth_data=None)``, ``download_size`` the same.
    """

    def test_show_and_size(self):
        url = self.image('raw')
        size = len(self.served(url))
        self.assertEqual(size, ironic.image_show(None, url)['size'])
        self.assertEqual(size, ironic.download_size(
            None, url, http.HttpImageService(), None))


class ImageCacheTestCase(IronicHostTestCase):
    """ImageCache, constructed and called as Ironic does.

    ``ImageCache(master_dir, cache_size, cache_ttl, disable_validation=False,
    force_raw=True).fetch_image(href, dest_path, ctx=None, force_raw=None,
    expected_format=None, expected_checksum=None,
    expected_checksum_algo=None, image_auth_data=None)``
    """

    def test_one_download_then_hardlinks(self):
        url = self.image('qcow2')
        image_cache = ironic.ImageCache(self.master_dir, 10 * units.Gi,
                                        3600)
        self.assertEqual('raw', image_cache.fetch_image(url, self.dest('a')))
        self.assertEqual('raw', image_cache.fetch_image(
            url, self.dest('b'), ctx=None, force_raw=None,
            expected_format=None, expected_checksum=None,
            expected_checksum_algo=None, image_auth_data=None))
        self.assertSameDisk(self.dest('b'))
        self.assertEqual(os.stat(self.dest('a')).st_ino,
                         os.stat(self.dest('b')).st_ino)
        self.assertEqual(1, len(self.downloads(url)))

    def test_force_raw_default_comes_from_the_constructor(self):
        url = self.image('qcow2')
        image_cache = ironic.ImageCache(self.master_dir, 10 * units.Gi,
                                        3600, disable_validation=False,
                                        force_raw=False)
        self.assertEqual('qcow2', image_cache.fetch_image(url, self.dest()))
        self.assertEqual(self.served(url), read(self.dest()))
        self.assertEqual('raw', image_cache.fetch_image(
            url, self.dest('raw'), force_raw=True))
        self.assertSameDisk(self.dest('raw'))

    def test_expected_checksum(self):
        url = self.image('raw')
        digest = hashlib.sha256(self.served(url)).hexdigest()
        image_cache = ironic.ImageCache(self.master_dir, 10 * units.Gi,
                                        3600)
        image_cache.fetch_image(url, self.dest(), expected_checksum=digest,
                                expected_checksum_algo='sha256')
        self.assertRaises(exception.InvalidImage, image_cache.fetch_image,
                          url, self.dest('again'),
                          expected_checksum='f' * 64,
                          expected_checksum_algo='sha256')
        self.assertFalse(os.path.exists(self.dest('again')))

    def test_no_master_dir_downloads_each_time(self):
        url = self.image('qcow2')
        image_cache = ironic.ImageCache(None, 0, 0)
        image_cache.fetch_image(url, self.dest('a'), force_raw=False)
        image_cache.fetch_image(url, self.dest('b'), force_raw=False)
        self.assertEqual(2, len(self.downloads(url)))
        self.assertEqual(self.served(url), read(self.dest('b')))
        self.assertEqual(0, image_cache.clean_up())

    def test_the_declared_format_is_checked(self):
        url = self.image('qcow2')
        image_cache = ironic.ImageCache(self.master_dir, 10 * units.Gi,
                                        3600)
        self.assertRaises(exception.ImageUnacceptable,
                          image_cache.fetch_image, url, self.dest(),
                          expected_format='raw')
        self.assertFalse(os.path.exists(self.dest()))

    def test_clean_up_evicts_expired_masters(self):
        url = self.image('raw')
        image_cache = ironic.ImageCache(self.master_dir, 10 * units.Gi, 0)
        image_cache.fetch_image(url, self.dest(), force_raw=False)
        os.unlink(self.dest())
        self.assertGreater(image_cache.clean_up(), 0)
        self.assertEqual([], [n for n in os.listdir(self.master_dir)
                              if not n.startswith('.')])
        self.assertEqual(0, image_cache.clean_up())


class CleanupRegistryTestCase(IronicHostTestCase):
    """cleanup, clean_up_caches and clean_up_all, as Ironic uses them.

    ``@cleanup(priority)`` on a subclass of ImageCache,
    ``clean_up_caches(ctx, directory, images_info, image_auth_data=None)``
    and ``clean_up_all()``.
    """

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.MockPatchObject(
            ironic, '_cache_cleanup_list', []))
        master_dir = self.master_dir

        @ironic.cleanup(priority=50)
        class InstanceImageCache(ironic.ImageCache):
            def __init__(self):
                super().__init__(master_dir, cache_size=10 * units.Gi,
                                 cache_ttl=0)

        self.cache_class = InstanceImageCache

    def masters(self):
        return [n for n in os.listdir(self.master_dir)
                if not n.startswith('.') and not n.endswith('.meta')]

    def test_clean_up_all(self):
        url = self.image('raw')
        self.cache_class().fetch_image(url, self.dest(), force_raw=False)
        os.unlink(self.dest())
        self.assertEqual(1, len(self.masters()))
        ironic.clean_up_all()
        self.assertEqual([], self.masters())

    def test_clean_up_caches(self):
        url = self.image('raw')
        self.cache_class().fetch_image(url, self.dest(), force_raw=False)
        os.unlink(self.dest())
        # Room enough: nothing is evicted.
        ironic.clean_up_caches(None, self.master_dir,
                               [(url, self.dest('next'))])
        self.assertEqual(1, len(self.masters()))
        # More than the disk holds: the cache is emptied, then it fails.
        stat = os.statvfs(self.master_dir)
        os.truncate(os.path.join(self.root, 'raw'),
                    stat.f_bavail * stat.f_frsize + units.Gi)
        self.assertRaises(exception.InsufficientDiskSpace,
                          ironic.clean_up_caches, None, self.master_dir,
                          [(url, self.dest('next'))], None)
        self.assertEqual([], self.masters())


class GlanceTestCase(IronicHostTestCase):

    def setUp(self):
        super().setUp()
        server = self.useFixture(glance.GlanceFixture(share_with=type(self)))
        self.config(auth_type='none', endpoint_override=server.url,
                    group='glance')
        qcow2 = read(images.make_image('qcow2', self.work, size=SIZE))
        # Declared raw, but qcow2: Ironic checks what Glance declares.
        self.image_id = server.create_image(
            qcow2, name='ironic-host-test', disk_format='raw',
            container_format='bare')['id']

    def test_the_format_glance_declares_is_checked(self):
        image_cache = ironic.ImageCache(self.master_dir, 10 * units.Gi,
                                        3600)
        self.assertRaises(exception.ImageUnacceptable,
                          image_cache.fetch_image, self.image_id,
                          self.dest(), ctx=None)
        # An explicit expected_format wins, as in Ironic.
        self.assertEqual('raw', image_cache.fetch_image(
            self.image_id, self.dest(), expected_format='qcow2'))
        self.assertSameDisk(self.dest())

    def test_disable_validation_does_not_look_up_the_format(self):
        image_cache = ironic.ImageCache(self.master_dir, 10 * units.Gi,
                                        3600, disable_validation=True,
                                        force_raw=False)
        self.assertEqual('qcow2', image_cache.fetch_image(self.image_id,
                                                          self.dest()))


class ValidateHrefTestCase(IronicHostTestCase):
    """The except clause of Ironic's deploy_utils._validate_image_url."""

    def validate(self, url):
        try:
            http.HttpImageService().validate_href(url, False)
        except exception.ImageRefValidationFailed as error:
            return error
        self.fail('validate_href(%s) did not fail' % url)

    def test_a_persistent_500_is_a_validation_failure(self):
        self.config(retries=1, group='download')
        error = self.validate(self.server.url_for('broken.img'))
        self.assertIsInstance(error, exception.TemporaryFailure)
        self.assertIn('HTTP 500', str(error))
        # show() is validate_href too (Ironic's get_image_properties).
        self.assertRaises(exception.ImageRefValidationFailed,
                          http.HttpImageService().show,
                          self.server.url_for('broken.img'))

    def test_an_unreachable_glance_is_a_validation_failure_of_show(self):
        # Ironic's get_image_properties catches ImageRefValidationFailed
        # around show() (and GlanceConnectionFailed, which we do not have).
        self.config(auth_type='none', num_retries=0, group='glance')
        self.config(endpoint_override='http://127.0.0.1:%d' % (
            base_servers.free_port()), group='glance')
        href = '0f0e0d0c-0b0a-4909-8807-060504030201'
        error = self.assertRaises(
            exception.ImageRefValidationFailed,
            image_service.get_image_service(href).show, href)
        self.assertIsInstance(error, exception.TemporaryFailure)

    def test_401_and_404_are_validation_failures(self):
        os.mkdir(os.path.join(self.root, 'private'))
        self.image('raw', name='private/disk.img')
        error = self.validate(self.server.url_for('private/disk.img'))
        self.assertIsInstance(error,
                              exception.ImageServiceAuthenticationRequired)
        self.validate(self.server.url_for('missing.img'))
