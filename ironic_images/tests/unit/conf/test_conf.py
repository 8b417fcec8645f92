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

"""Tests of the configuration: registration beside a host's options."""

import os
import subprocess
import sys
import textwrap

from oslo_config import cfg

from ironic_images import conf
from ironic_images.conf import sharing
from ironic_images.image_service.oci import client as oci_client
from ironic_images.tests import base
from ironic_images.tests.unit.conf import ironic39
from ironic_images.tests.unit.conf import nova34
from ironic_images.transfer import http_client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))))


def run_python(code):
    """Run ``code`` in a fresh interpreter; return its stdout."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                            capture_output=True, text=True, env=env,
                            timeout=120)
    if result.returncode:
        raise AssertionError(result.stderr)
    return result.stdout


class HostOptionsTestCase(base.TestCase):
    """A ConfigOpts that holds Ironic 39's options first."""

    def setUp(self):
        super().setUp()
        self.host = cfg.ConfigOpts()
        ironic39.register_opts(self.host)
        self.ca = os.path.join(self.images_dir, 'ca.pem')
        with open(self.ca, 'w') as f:
            f.write('not read by these tests\n')

    def parse(self, text):
        path = os.path.join(self.images_dir, 'service.conf')
        with open(path, 'w') as f:
            f.write(textwrap.dedent(text))
        self.host(['--config-file', path], project='ironic',
                  default_config_files=[], default_config_dirs=[])

    def use_host(self):
        conf.use(self.host)
        self.addCleanup(conf.use, None)

    def test_the_library_did_not_fit_ironic_options_before(self):
        # What the issue reported: oslo.config refuses each of the ten.
        for group, name in ironic39.COLLIDING:
            opts = dict(conf.list_opts())[group or 'DEFAULT']
            ours = next(opt for opt in opts if opt.dest == name)
            self.assertRaises(cfg.DuplicateOptError, self.host.register_opt,
                              ours, group)

    def test_registering_keeps_the_host_options(self):
        before = {key: sharing.registered_opt(self.host, key[1], key[0])
                  for key in ironic39.COLLIDING}
        conf.register_opts(self.host)
        for (group, name), opt in before.items():
            self.assertIs(opt, sharing.registered_opt(self.host, name, group))
        # The library's other options are there too.
        self.assertEqual(4 * 1024 * 1024, self.host.download.chunk_size)
        self.assertEqual(['file', 'http', 'https', 'oci', 'glance'],
                         self.host.enabled_image_services)

    def test_registering_twice_is_harmless(self):
        conf.register_opts(self.host)
        conf.register_opts(self.host)
        self.assertEqual(0, self.host.glance.num_retries)

    def test_the_library_reads_the_host_values(self):
        self.parse("""
            [DEFAULT]
            webserver_verify_ca = %s
            webserver_connection_timeout = 7

            [download]
            chunk_size = 1048576
            """ % self.ca)
        self.use_host()
        # Set once, read by the host and by the library.
        self.assertEqual(self.ca, self.host.webserver_verify_ca)
        self.assertEqual(self.ca, conf.CONF.webserver_verify_ca)
        self.assertEqual((7, 7), http_client.timeout())
        # Ironic's defaults apply where it defines the option.
        self.assertEqual(0, conf.CONF.glance.num_retries)
        self.assertEqual('image', conf.CONF.glance.service_type)
        self.assertEqual(ironic39.DEFAULT_OPTS[0].default,
                         conf.CONF.tempdir)
        # [oci]verify_ca unset, in Ironic as here: webserver_verify_ca.
        self.assertIsNone(conf.CONF.oci.verify_ca)
        self.assertEqual(self.ca, oci_client.OciClient().verify)
        # The library's own options come from the same file.
        self.assertEqual(1048576, conf.CONF.download.chunk_size)

    def test_overrides_reach_the_host_configuration(self):
        self.use_host()
        self.host.set_override('num_retries', 2, group='glance')
        self.addCleanup(self.host.clear_override, 'num_retries',
                        group='glance')
        self.assertEqual(2, conf.CONF.glance.num_retries)

    def test_another_type_is_a_conflict(self):
        other = cfg.ConfigOpts()
        other.register_opt(cfg.IntOpt('tempdir'))
        self.assertRaises(cfg.DuplicateOptError, conf.register_opts, other)

    def test_list_item_types_must_match(self):
        other = cfg.ConfigOpts()
        other.register_opt(cfg.ListOpt('enabled_image_services',
                                       item_type=cfg.types.Integer()))
        self.assertRaises(cfg.DuplicateOptError, conf.register_opts, other)

    def test_a_secret_must_stay_secret(self):
        other = cfg.ConfigOpts()
        other.register_opt(cfg.StrOpt('password'), group='http')
        self.assertRaises(cfg.DuplicateOptError, conf.register_opts, other)
        other = cfg.ConfigOpts()
        host_password = cfg.StrOpt('password', secret=True, help='host')
        other.register_opt(host_password, group='http')
        conf.register_opts(other)
        self.assertIs(host_password,
                      sharing.registered_opt(other, 'password', 'http'))

    def test_auth_type_is_registered_in_the_auth_section(self):
        self.parse("""
            [glance]
            auth_section = service_auth

            [service_auth]
            auth_type = none
            """)
        conf.register_opts(self.host)
        self.assertEqual('none', self.host.service_auth.auth_type)


class NovaOptionsTestCase(base.TestCase):

    def test_nova_options_are_kept_and_read(self):
        host = cfg.ConfigOpts()
        nova34.register_opts(host)
        placeholder = sharing.registered_opt(host, 'version', 'glance')
        conf.register_opts(host)
        self.assertIs(placeholder,
                      sharing.registered_opt(host, 'version', 'glance'))
        host([], project='nova', default_config_files=[],
             default_config_dirs=[])
        conf.use(host)
        self.addCleanup(conf.use, None)
        self.assertEqual(3, conf.CONF.glance.num_retries)
        self.assertEqual(['internal', 'public'],
                         conf.CONF.glance.valid_interfaces)
        self.assertIsNone(conf.CONF.glance.version)
        self.assertIsNone(conf.CONF.tempdir)


class UseTestCase(base.TestCase):

    def test_use_switches_what_the_library_reads(self):
        other = cfg.ConfigOpts()
        other([], default_config_files=[], default_config_dirs=[])
        conf.use(other)
        self.addCleanup(conf.use, None)
        other.set_override('webserver_connection_timeout', 3)
        self.assertEqual((3, 3), http_client.timeout())
        self.assertEqual(60, cfg.CONF.webserver_connection_timeout)
        conf.use(None)
        self.assertEqual((60, 60), http_client.timeout())

    def test_list_opts_names_every_group_once(self):
        groups = [group for group, _opts in conf.list_opts()]
        self.assertEqual(['DEFAULT', 'file', 'http', 'oci', 'glance',
                          'image_format', 'image_convert', 'download',
                          'image_cache', 'service_user'], groups)


class ImportTestCase(base.TestCase):
    """Run in a fresh interpreter: this one has registered everything."""

    def test_importing_any_module_registers_nothing(self):
        out = run_python("""
            import pkgutil, importlib
            import ironic_images
            from oslo_config import cfg
            names = [m.name for m in pkgutil.walk_packages(
                ironic_images.__path__, 'ironic_images.')
                if '.tests' not in m.name]
            for name in names:
                importlib.import_module(name)
            from ironic_images import conf
            from ironic_images.conf import sharing
            found = [(g, o.dest) for g, opts in conf.list_opts()
                     for o in opts if sharing.registered_opt(
                         cfg.CONF, o.dest, None if g == 'DEFAULT' else g)]
            print(len(names), found)
            """)
        count, found = out.split(' ', 1)
        self.assertGreater(int(count), 50)
        self.assertEqual('[]', found.strip())

    def test_a_host_may_register_after_importing_the_library(self):
        # As a conductor that imports ironic_images modules before
        # ironic.conf: nothing is registered until the library reads.
        out = run_python("""
            from oslo_config import cfg
            from ironic_images.cache import cache
            from ironic_images.conf import CONF
            from ironic_images.tests.unit.conf import ironic39
            ironic39.register_opts(cfg.CONF)
            cfg.CONF([], project='ironic', default_config_files=[],
                     default_config_dirs=[])
            print(CONF.glance.num_retries, CONF.download.retries)
            """)
        self.assertEqual('0 3', out.strip())

    def test_a_host_that_registered_first(self):
        out = run_python("""
            from oslo_config import cfg
            from ironic_images.tests.unit.conf import ironic39
            ironic39.register_opts(cfg.CONF)
            from ironic_images import conf
            conf.use(cfg.CONF)
            cfg.CONF([], project='ironic', default_config_files=[],
                     default_config_dirs=[])
            print(conf.CONF.glance.num_retries, conf.CONF.download.retries)
            """)
        self.assertEqual('0 3', out.strip())
