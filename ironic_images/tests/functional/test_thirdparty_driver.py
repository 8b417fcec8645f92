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

"""A third party adds a URL scheme through an entry point only.

A throw-away distribution (a module and its ``.dist-info`` with
``entry_points.txt``) is put on ``sys.path``; nothing in ironic-images
changes, yet ``get_image_service`` loads its driver by scheme.
"""

import importlib
import io
import os
import sys
import textwrap

import fixtures
import stevedore

from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service import base as service_base
from ironic_images.image_service import file as file_service
from ironic_images.tests import base

MODULE = 'thirdparty_s3'

MODULE_SOURCE = textwrap.dedent('''
    """A third-party image service for s3:// hrefs (test double)."""

    from ironic_images.image_service import base

    PAYLOAD = b'bytes from a bucket'


    class S3ImageService(base.BaseImageService):

        def validate_href(self, image_href):
            return image_href.split('/', 3)[2:]

        def show(self, image_href):
            bucket, key = self.validate_href(image_href)
            return {'size': len(PAYLOAD), 'updated_at': None,
                    'properties': {'bucket': bucket, 'key': key}}

        def download(self, image_href, image_file, checksum=None,
                     checksum_algo=None):
            image_file.write(PAYLOAD)
''')


class ThirdPartyDriverTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.site = self.useFixture(fixtures.TempDir()).path
        # stevedore keeps the entry points of a namespace for the life of
        # the process (ExtensionManager.ENTRY_POINT_CACHE, besides the
        # per-sys.path cache of stevedore._cache): give this test its own.
        self.useFixture(fixtures.MonkeyPatch(
            'stevedore.extension.ExtensionManager.ENTRY_POINT_CACHE', {}))
        self.addCleanup(self._forget)
        saved_path = list(sys.path)
        self.addCleanup(sys.path.__setitem__, slice(None), saved_path)

    def _forget(self):
        stevedore.ExtensionManager.ENTRY_POINT_CACHE.pop(
            image_service.NAMESPACE, None)
        sys.modules.pop(MODULE, None)
        importlib.invalidate_caches()
        image_service._driver_class.cache_clear()

    def install(self, name, entry_points, module_source=None):
        """Create a distribution in self.site and put it on sys.path."""
        if module_source is not None:
            with open(os.path.join(self.site, MODULE + '.py'), 'w') as f:
                f.write(module_source)
        dist_info = os.path.join(self.site, '%s-1.0.dist-info' % name)
        os.mkdir(dist_info)
        with open(os.path.join(dist_info, 'METADATA'), 'w') as f:
            f.write('Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n'
                    % name)
        with open(os.path.join(dist_info, 'entry_points.txt'), 'w') as f:
            f.write('[ironic_images.image_services]\n%s\n' % entry_points)
        sys.path.insert(0, self.site)
        self._forget()

    def test_scheme_added_by_entry_point(self):
        self.install('thirdparty_s3', 's3 = thirdparty_s3:S3ImageService',
                     MODULE_SOURCE)
        self.config(enabled_image_services=['file', 's3'])
        self.assertIn('s3', stevedore.ExtensionManager(
            'ironic_images.image_services').names())
        client = object()
        service = image_service.get_image_service('s3://bucket/dir/x.img',
                                                  client=client)
        module = sys.modules[MODULE]
        self.assertIs(module.S3ImageService, type(service))
        self.assertIsInstance(service, service_base.BaseImageService)
        self.assertEqual(os.path.join(self.site, MODULE + '.py'),
                         module.__file__)
        self.assertIs(client, service.client)
        self.assertEqual({'bucket': 'bucket', 'key': 'dir/x.img'},
                         service.show('s3://bucket/dir/x.img')['properties'])
        out = io.BytesIO()
        service.download('s3://bucket/dir/x.img', out)
        self.assertEqual(b'bytes from a bucket', out.getvalue())
        # The built-in schemes are unaffected.
        self.assertIsInstance(
            image_service.get_image_service('file:///var/lib/x.img'),
            file_service.FileImageService)

    def test_installed_but_not_enabled(self):
        self.install('thirdparty_s3', 's3 = thirdparty_s3:S3ImageService',
                     MODULE_SOURCE)
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service,
                                's3://bucket/x.img')
        self.assertIn('"s3"', str(exc))
        self.assertIn('[DEFAULT]enabled_image_services', str(exc))
        self.assertNotIn(MODULE, sys.modules)

    def test_broken_entry_point(self):
        self.install('thirdparty_broken',
                     'broken = thirdparty_missing:Nope')
        self.config(enabled_image_services=['file', 'broken'])
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service,
                                'broken://h/x.img')
        self.assertIsInstance(exc, exception.ImageRefValidationFailed)
        self.assertIn('"broken"', str(exc))
        self.assertIn('failed to load', str(exc))
        self.assertIn('thirdparty_missing:Nope', str(exc))
        self.assertIn('thirdparty_missing', str(exc))

    def test_missing_class_in_existing_module(self):
        self.install('thirdparty_s3', 's3 = thirdparty_s3:NoSuchClass',
                     MODULE_SOURCE)
        self.config(enabled_image_services=['s3'])
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service,
                                's3://bucket/x.img')
        self.assertIn('failed to load', str(exc))
        self.assertIn('thirdparty_s3:NoSuchClass', str(exc))

    def test_gone_after_uninstall(self):
        self.install('thirdparty_s3', 's3 = thirdparty_s3:S3ImageService',
                     MODULE_SOURCE)
        self.config(enabled_image_services=['s3'])
        image_service.get_image_service('s3://bucket/x.img')
        sys.path.remove(self.site)
        self._forget()
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service,
                                's3://bucket/x.img')
        self.assertIn('no driver is installed', str(exc))
