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

"""Tests of the driver manager and the auth override lookup."""

import logging
import types
from unittest import mock
import warnings

import fixtures
import stevedore
from stevedore import exception as stevedore_exc

from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service import base as service_base
from ironic_images.image_service import file as file_service
from ironic_images.tests import base

UUID = '6a7e3c3e-3a64-4b1f-9a8d-2f0e4d1c9b10'


class GetImageServiceTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.href = 'file://%s/x.img' % self.images_dir

    def test_file_service_through_stevedore(self):
        with mock.patch.object(stevedore, 'DriverManager', autospec=True,
                               side_effect=stevedore.DriverManager) as dm:
            service = image_service.get_image_service(self.href)
        self.assertIsInstance(service, file_service.FileImageService)
        self.assertIsInstance(service, service_base.BaseImageService)
        dm.assert_called_once_with(
            'ironic_images.image_services', 'file', invoke_on_load=False,
            on_load_failure_callback=mock.ANY)

    def test_file_service_registered_as_entry_point(self):
        manager = stevedore.ExtensionManager('ironic_images.image_services')
        self.assertIn('file', manager.names())
        self.assertIs(file_service.FileImageService, manager['file'].plugin)
        self.assertEqual('ironic_images.image_service.file:FileImageService',
                         manager['file'].entry_point.value)

    def test_default_path_from_design(self):
        service = image_service.get_image_service(
            'file:///var/lib/ironic/images/x.img')
        self.assertIs(file_service.FileImageService, type(service))

    def test_driver_class_loaded_once(self):
        with mock.patch.object(stevedore, 'DriverManager', autospec=True,
                               side_effect=stevedore.DriverManager) as dm:
            first = image_service.get_image_service(self.href)
            second = image_service.get_image_service(self.href)
        self.assertEqual(1, dm.call_count)
        # A new instance each time: drivers keep per-download state.
        self.assertIsNot(first, second)

    def test_client_and_context_passed(self):
        client, context = object(), object()
        service = image_service.get_image_service(self.href, client=client,
                                                  context=context)
        self.assertIs(client, service.client)
        self.assertIs(context, service.context)
        self.assertIsNone(service.transfer_verified_checksum)
        self.assertFalse(service.is_auth_set_needed)

    def test_scheme_case_insensitive(self):
        service = image_service.get_image_service(
            'FILE://%s/x.img' % self.images_dir)
        self.assertIsInstance(service, file_service.FileImageService)
        self.config(enabled_image_services=['FILE'])
        service = image_service.get_image_service(self.href)
        self.assertIsInstance(service, file_service.FileImageService)

    def test_unknown_scheme(self):
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service,
                                'gopher://h/x.img')
        self.assertIsInstance(exc, exception.ImageRefValidationFailed)
        self.assertIn('"gopher"', str(exc))
        self.assertIn('gopher://h/x.img', str(exc))

    def test_enabled_scheme_without_driver(self):
        self.config(enabled_image_services=['file', 'gopher'])
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service,
                                'gopher://h/x.img')
        self.assertIn('"gopher"', str(exc))
        self.assertIn('no driver is installed', str(exc))
        self.assertIn('ironic_images.image_services', str(exc))

    def test_loading_warns_nothing(self):
        # Neither a DeprecationWarning (stevedore's warn_on_missing_entrypoint
        # is deprecated) nor stevedore's own log line for a missing name:
        # the exception says it all.
        self.config(enabled_image_services=['file', 'gopher'])
        logs = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            self.assertRaises(exception.UnknownImageService,
                              image_service.get_image_service,
                              'gopher://h/x.img')
            image_service.get_image_service(self.href)
        self.assertEqual([], [str(w.message) for w in caught])
        self.assertNotIn('gopher', logs.output)

    def test_disabled_scheme(self):
        self.config(enabled_image_services=['http', 'https'])
        with mock.patch.object(stevedore, 'DriverManager',
                               autospec=True) as dm:
            exc = self.assertRaises(exception.UnknownImageService,
                                    image_service.get_image_service,
                                    self.href)
        self.assertIn('[DEFAULT]enabled_image_services', str(exc))
        self.assertIn('"file"', str(exc))
        self.assertIn('http, https', str(exc))
        # A disabled driver is not even loaded.
        dm.assert_not_called()

    def test_nothing_enabled(self):
        self.config(enabled_image_services=[])
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service, self.href)
        self.assertIn('[DEFAULT]enabled_image_services', str(exc))

    def test_multiple_drivers(self):
        with mock.patch.object(
                stevedore, 'DriverManager', autospec=True,
                side_effect=stevedore_exc.MultipleMatches('two')):
            exc = self.assertRaises(exception.UnknownImageService,
                                    image_service.get_image_service,
                                    self.href)
        self.assertIn('"file"', str(exc))
        self.assertIn('several', str(exc))

    def test_bare_uuid_is_glance(self):
        self.config(enabled_image_services=['file'])
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service, UUID)
        self.assertIn('"glance"', str(exc))
        self.assertIn('[DEFAULT]enabled_image_services', str(exc))

    def test_no_scheme(self):
        for href in ('/var/lib/ironic/images/x.img', 'x.img', '',
                     'not-a-uuid-1234'):
            exc = self.assertRaises(exception.ImageRefValidationFailed,
                                    image_service.get_image_service, href)
            self.assertIn('no URL scheme', str(exc))

    def test_secret_href_masked_in_error(self):
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service,
                                'gopher://u:pw77@h/x.img')
        self.assertNotIn('pw77', str(exc))


class ImageSchemeTestCase(base.TestCase):

    def test_schemes(self):
        self.assertEqual('glance', image_service.image_scheme(UUID))
        self.assertEqual('glance', image_service.image_scheme(UUID.upper()))
        self.assertEqual('glance',
                         image_service.image_scheme(' %s\n' % UUID))
        self.assertEqual('glance',
                         image_service.image_scheme('glance://' + UUID))
        self.assertEqual('file', image_service.image_scheme('file:///x'))
        self.assertEqual('https',
                         image_service.image_scheme('HTTPS://h/x'))
        self.assertEqual('oci', image_service.image_scheme('oci://q/x:1'))

    def test_no_scheme(self):
        self.assertRaises(exception.ImageRefValidationFailed,
                          image_service.image_scheme, '/x.img')


class IsContainerRegistryUrlTestCase(base.TestCase):

    def test_oci(self):
        self.assertTrue(image_service.is_container_registry_url(
            'oci://quay.io/org/image:tag'))
        self.assertTrue(image_service.is_container_registry_url(
            'OCI://quay.io/org/image@sha256:' + 'a' * 64))

    def test_not_oci(self):
        for href in ('https://quay.io/org/image', 'file:///oci/x',
                     'docker://quay.io/x', 'oci:/quay.io/x', UUID, '',
                     None, 42, b'oci://quay.io/x'):
            self.assertFalse(image_service.is_container_registry_url(href),
                             repr(href))


def _node(instance_secret=None, driver_secret=None):
    instance_info = {'image_source': 'oci://q/x'}
    driver_info = {'ipmi_address': '10.0.0.1'}
    if instance_secret is not None:
        instance_info['image_pull_secret'] = instance_secret
    if driver_secret is not None:
        driver_info['image_pull_secret'] = driver_secret
    return types.SimpleNamespace(instance_info=instance_info,
                                 driver_info=driver_info)


class AuthOverrideTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.get = image_service.get_image_service_auth_override

    def test_instance_info_first(self):
        self.config(auth_strategy='http_basic', user='cfguser',
                    password='cfgpass', group='http')
        self.assertEqual({'username': '', 'password': 'user-secret'},
                         self.get(_node('user-secret', 'admin-secret')))

    def test_instance_info_ignored_unless_permitted(self):
        self.assertEqual({'username': '', 'password': 'admin-secret'},
                         self.get(_node('user-secret', 'admin-secret'),
                                  permit_user_auth=False))
        self.assertIsNone(self.get(_node('user-secret'),
                                   permit_user_auth=False))

    def test_driver_info(self):
        self.assertEqual({'username': '', 'password': 'admin-secret'},
                         self.get(_node(driver_secret='admin-secret')))

    def test_empty_secret_skipped(self):
        self.assertEqual({'username': '', 'password': 'admin-secret'},
                         self.get(_node('', 'admin-secret')))

    def test_http_basic_config(self):
        self.config(auth_strategy='http_basic', user='cfguser',
                    password='cfgpass', group='http')
        self.assertEqual({'username': 'cfguser', 'password': 'cfgpass'},
                         self.get(_node()))
        self.assertEqual({'username': 'cfguser', 'password': 'cfgpass'},
                         self.get(_node('user-secret'),
                                  permit_user_auth=False))

    def test_noauth_config_gives_none(self):
        self.config(auth_strategy='noauth', user='cfguser',
                    password='cfgpass', group='http')
        self.assertIsNone(self.get(_node()))

    def test_none(self):
        self.assertIsNone(self.get(_node()))

    def test_node_without_dicts(self):
        node = types.SimpleNamespace(instance_info=None, driver_info=None)
        self.assertIsNone(self.get(node))
        self.assertIsNone(self.get(object()))
