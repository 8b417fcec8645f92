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

"""Tests of what names an image on the command line, and its access."""

import base64
import json
import os
import types
from unittest import mock

import fixtures
from oslo_config import cfg

from ironic_images.cmd import clouds
from ironic_images.cmd import parser
from ironic_images.cmd import sources
from ironic_images.conf import CONF
from ironic_images import image_utils
from ironic_images.tests.unit.cmd import cli_base

UUID = '6a7e3c3e-3a64-4b1f-9a8d-2f0e4d1c9b10'


def _auth_json(path, host, user, password):
    pair = base64.b64encode(('%s:%s' % (user, password)).encode()).decode()
    with open(path, 'w') as f:
        json.dump({'auths': {host: {'auth': pair}}}, f)


class LocalPathTestCase(cli_base.CommandTestCase):

    def test_what_is_a_path(self):
        self.assertEqual(self.image, sources.local_path(self.image))
        for text in ('http://h/x', 'oci://h/r:t', 'file:///x', UUID):
            self.assertIsNone(sources.local_path(text), text)
        for text in ('nope.qcow2', './x', 'a:b', 'glance:1'):
            self.assertEqual(text, sources.local_path(text))

    def test_an_existing_file_wins_over_an_id(self):
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.store)
        with open(UUID, 'wb') as f:
            f.write(b'x')
        self.assertEqual(UUID, sources.local_path(UUID))


class AuthFilesTestCase(cli_base.CommandTestCase):

    def test_default_files_in_the_order_of_podman(self):
        runtime = self.useFixture(fixtures.TempDir()).path
        files = {
            'REGISTRY_AUTH_FILE': os.path.join(self.home, 'reg.json'),
            'XDG_RUNTIME_DIR': os.path.join(runtime, 'containers',
                                            'auth.json'),
            'config': os.path.join(self.home, '.config', 'containers',
                                   'auth.json'),
            'docker': os.path.join(self.home, '.docker', 'config.json')}
        for path in files.values():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w') as f:
                f.write('{}')
        environ = {'REGISTRY_AUTH_FILE': files['REGISTRY_AUTH_FILE'],
                   'XDG_RUNTIME_DIR': runtime}
        self.assertEqual(
            [files[key] for key in ('REGISTRY_AUTH_FILE', 'XDG_RUNTIME_DIR',
                                    'config', 'docker')],
            [path for path, _what in sources.auth_files(None, environ)])
        os.unlink(files['config'])
        environ['DOCKER_CONFIG'] = os.path.join(self.home, 'elsewhere')
        self.assertEqual(
            [files['REGISTRY_AUTH_FILE'], files['XDG_RUNTIME_DIR']],
            [path for path, _what in sources.auth_files(None, environ)])

    def test_authfile_and_the_option_come_first(self):
        self.assertEqual([('/x.json', '--authfile')],
                         sources.auth_files('/x.json', {}))
        self.config(authentication_config='/c.json', group='oci')
        self.assertEqual([], sources.auth_files(None, {}))


class CredentialsTestCase(cli_base.CommandTestCase):
    """What each kind of image takes, seen through fetch's arguments."""

    def setUp(self):
        super().setUp()
        self.fetch = self.useFixture(fixtures.MockPatchObject(
            image_utils, 'fetch', side_effect=self._fetched)).mock

    def _fetched(self, context, href, path, **kwargs):
        # What the HTTP driver would read, while the command runs.
        self.seen = (CONF.http.auth_strategy, CONF.http.user,
                     CONF.http.password)
        return types.SimpleNamespace(
            href=href, format='raw', source_format='raw', size=1,
            virtual_size=1, compression=None, checksum=None, member=None)

    def auth_data(self):
        return self.fetch.call_args.kwargs['image_auth_data']

    def test_creds_for_a_registry(self):
        code, out, err = self.run_main(
            'fetch', 'oci://127.0.0.1:5000/disk:1', self.dest, '--creds',
            'alice:pa:ss')
        self.assertEqual(0, code, err)
        self.assertEqual({'username': 'alice', 'password': 'pa:ss'},
                         self.auth_data())
        self.assertNotIn('pa:ss', out + err)

    def test_authfile_for_a_registry(self):
        path = os.path.join(self.home, 'auth.json')
        _auth_json(path, '127.0.0.1:5000', 'bob', 's3cret')
        code, out, err = self.run_main(
            'fetch', 'oci://127.0.0.1:5000/disk:1', self.dest,
            '--authfile', path)
        self.assertEqual(0, code, err)
        self.assertEqual({'username': 'bob', 'password': 's3cret'},
                         self.auth_data())
        # Another registry: nothing from the file.
        self.run_main('fetch', 'oci://127.0.0.1:5001/disk:1', self.dest,
                      '--authfile', path)
        self.assertIsNone(self.auth_data())

    def test_docker_config_of_the_user(self):
        os.makedirs(os.path.join(self.home, '.docker'))
        _auth_json(os.path.join(self.home, '.docker', 'config.json'),
                   'reg.example.com', 'carol', 'pw')
        self.run_main('fetch', 'oci://reg.example.com/disk:1', self.dest)
        self.assertEqual({'username': 'carol', 'password': 'pw'},
                         self.auth_data())

    def test_creds_for_a_web_server(self):
        code, out, err = self.run_main(
            'fetch', 'https://h.example.com/disk.img', self.dest, '--creds',
            'dave:pw2')
        self.assertEqual(0, code, err)
        self.assertEqual(('http_basic', 'dave', 'pw2'), self.seen)
        self.assertIsNone(self.auth_data())
        # For this run only.
        self.assertEqual('noauth', CONF.http.auth_strategy)
        self.assertIsNone(CONF.http.password)

    def test_creds_that_do_not_apply(self):
        for argv, fragment in (
                (['fetch', UUID, self.dest, '--creds', 'a:b'], 'Glance'),
                (['fetch', self.image, self.dest, '--creds', 'a:b'],
                 'local file'),
                (['fetch', 'oci://h/d:1', self.dest, '--creds', 'ab'],
                 'USER:PASSWORD'),
                (['fetch', 'oci://h/d:1', self.dest, '--authfile',
                  '/nonexistent.json'], '--authfile /nonexistent.json')):
            code, out, err = self.run_main(*argv)
            self.assertEqual((2, ''), (code, out), argv)
            self.assertOneLineError(err, fragment)
        self.fetch.assert_not_called()


class TlsTestCase(cli_base.CommandTestCase):

    def setUp(self):
        super().setUp()
        self.seen = []

        def _fetched(context, href, path, **kwargs):
            self.seen.append((CONF.webserver_verify_ca, CONF.oci.verify_ca,
                              CONF.oci.permit_fallback_to_http_transport,
                              CONF.glance.insecure, CONF.glance.cafile))
            return types.SimpleNamespace(
                href=href, format='raw', source_format='raw', size=1,
                virtual_size=1, compression=None, checksum=None,
                member=None)

        self.useFixture(fixtures.MockPatchObject(image_utils, 'fetch',
                                                 side_effect=_fetched))

    def test_insecure(self):
        code, out, err = self.run_main('fetch', 'https://h/x', self.dest,
                                       '--insecure')
        self.assertEqual(0, code, err)
        self.assertEqual([('False', 'False', True, True, None)], self.seen)

    def test_ca_file(self):
        ca = os.path.join(self.home, 'ca.pem')
        open(ca, 'w').close()
        code, out, err = self.run_main('fetch', 'https://h/x', self.dest,
                                       '--ca-file', ca)
        self.assertEqual(0, code, err)
        self.assertEqual([(ca, ca, False, False, ca)], self.seen)

    def test_bad_combinations(self):
        for argv, fragment in (
                (['--ca-file', '/nonexistent.pem'], 'no such file'),
                (['--ca-file', self.image, '--insecure'], 'exclude')):
            code, out, err = self.run_main('fetch', 'https://h/x',
                                           self.dest, *argv)
            self.assertEqual(2, code)
            self.assertOneLineError(err, fragment)
        self.assertEqual([], self.seen)


class CloudsTestCase(cli_base.CommandTestCase):

    def setUp(self):
        super().setUp()
        self.etc = os.path.join(self.home, '.config', 'openstack')
        os.makedirs(self.etc)
        self.useFixture(fixtures.MonkeyPatch(
            'os.getcwd', lambda: self.store))

    def write(self, name, text):
        with open(os.path.join(self.etc, name), 'w') as f:
            f.write(text)

    def test_cloud_and_its_secrets(self):
        self.write('clouds.yaml', (
            'clouds:\n'
            '  mine:\n'
            '    auth:\n'
            '      auth_url: https://keystone.example.com/v3\n'
            '      username: alice\n'
            '      project-name: demo\n'
            '      user_domain_name: Default\n'
            '    region_name: RegionTwo\n'
            '    interface: internal\n'
            '    cacert: /etc/ssl/cloud.pem\n'))
        self.write('secure.yaml', 'clouds:\n  mine:\n    auth:\n'
                   '      password: s3cret\n')
        cloud = clouds.find_cloud('mine')
        auth_type, options = clouds.glance_options(cloud, 'mine')
        self.assertEqual('password', auth_type)
        self.assertEqual({'auth_url': 'https://keystone.example.com/v3',
                          'username': 'alice', 'password': 's3cret',
                          'project_name': 'demo',
                          'user_domain_name': 'Default',
                          'region_name': 'RegionTwo',
                          'valid_interfaces': ['internal'],
                          'cafile': '/etc/ssl/cloud.pem'}, options)
        auth_type, options = clouds.glance_options(cloud, 'mine',
                                                   keep_tls=True)
        self.assertNotIn('cafile', options)

    def test_no_keystone(self):
        self.write('clouds.yaml', (
            'clouds:\n'
            '  lab:\n'
            '    auth_type: none\n'
            '    image_endpoint_override: http://127.0.0.1:9292\n'
            '    verify: false\n'))
        self.assertEqual(
            ('none', {'endpoint_override': 'http://127.0.0.1:9292',
                      'insecure': True}),
            clouds.glance_options(clouds.find_cloud('lab'), 'lab'))

    def test_file_named_by_the_environment(self):
        path = os.path.join(self.home, 'elsewhere.yaml')
        with open(path, 'w') as f:
            f.write('clouds:\n  x:\n    auth_type: none\n')
        self.assertEqual({'auth_type': 'none'},
                         clouds.find_cloud('x', {'OS_CLIENT_CONFIG_FILE':
                                                 path}))

    def test_errors(self):
        self.assertRaisesRegex(parser.UsageError, 'no clouds.yaml',
                               clouds.find_cloud, 'mine')
        self.write('clouds.yaml', 'clouds:\n  a: {}\n')
        self.assertRaisesRegex(parser.UsageError, r"no cloud 'mine'.*: a",
                               clouds.find_cloud, 'mine')
        self.assertRaisesRegex(parser.UsageError, 'takes no .colour.',
                               clouds.glance_options,
                               {'auth': {'colour': 'red'}}, 'a')
        self.assertRaisesRegex(parser.UsageError, 'auth_type magic',
                               clouds.glance_options,
                               {'auth_type': 'magic'}, 'a')
        self.write('clouds.yaml', 'clouds: [\n')
        self.assertRaisesRegex(parser.UsageError, 'cannot read',
                               clouds.find_cloud, 'mine')

    def test_the_cloud_is_used_for_glance_only_and_for_one_run(self):
        self.write('clouds.yaml', (
            'clouds:\n'
            '  lab:\n'
            '    auth_type: none\n'
            '    image_endpoint_override: http://127.0.0.1:9\n'))
        self.useFixture(fixtures.EnvironmentVariable('OS_CLOUD', 'lab'))
        seen = []

        def _fetched(context, href, path, **kwargs):
            seen.append((CONF.glance.auth_type,
                         CONF.glance.endpoint_override))
            raise RuntimeError('stop here')

        with mock.patch.object(image_utils, 'fetch', autospec=True,
                               side_effect=_fetched):
            self.run_main('fetch', UUID, self.dest)
            self.run_main('fetch', 'https://h/x', self.dest)
        self.assertEqual([('none', 'http://127.0.0.1:9'), (None, None)],
                         seen)
        self.assertIsNone(CONF.glance.auth_type)
        # The plugin's options are gone with the run.
        self.assertRaises(cfg.NoSuchOptError, getattr, CONF.glance,
                          'endpoint')
