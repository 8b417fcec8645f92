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

"""Which auth plugin a user's request gets; the [service_user] options.

What Glance receives is tested against a real Keystone and Glance in
``tests/functional/test_service_tokens.py``.
"""

import logging

import fixtures
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import service_token
from keystoneauth1 import token_endpoint

from ironic_images.conf import CONF
from ironic_images.conf import opts
from ironic_images import exception
from ironic_images.image_service.glance import service_auth
from ironic_images.tests import base

ENDPOINT = 'http://glance.test:9292'
TOKEN = 'user-token-0123456789'


class TestServiceAuth(base.TestCase):

    def setUp(self):
        super().setUp()
        service_auth._AUTHS.clear()
        self.addCleanup(service_auth._AUTHS.clear)

    def password_options(self, **values):
        options = ks_loading.get_auth_plugin_conf_options('password')
        for option in options:
            if option.dest in CONF.service_user:
                CONF.unregister_opt(option, group='service_user')
        self.cfg_fixture.register_opts(options, group='service_user')
        self.config(auth_type='password', group='service_user', **values)

    def test_off_by_default(self):
        self.assertFalse(CONF.service_user.send_service_user_token)
        self.password_options(auth_url='http://keystone.test/v3',
                              username='cinder', password='pw')
        auth = service_auth.user_auth(ENDPOINT, TOKEN)
        self.assertIsInstance(auth, token_endpoint.Token)
        self.assertIsNone(service_auth.service_user_auth())

    def test_user_token_wrapped_with_the_service_users(self):
        self.config(send_service_user_token=True, group='service_user')
        self.password_options(auth_url='http://keystone.test/v3',
                              username='cinder', password='pw',
                              project_name='service',
                              user_domain_id='default',
                              project_domain_id='default')
        auth = service_auth.user_auth(ENDPOINT, TOKEN)
        self.assertIsInstance(auth, service_token.ServiceTokenAuthWrapper)
        self.assertIsInstance(auth.user_auth, token_endpoint.Token)
        self.assertEqual(TOKEN, auth.user_auth.get_token(None))
        self.assertEqual('cinder', auth.service_auth._username)
        # One plugin for the options: its token is fetched once.
        self.assertIs(auth.service_auth,
                      service_auth.user_auth(ENDPOINT, TOKEN).service_auth)

    def test_without_auth_type_only_the_user_token_is_sent(self):
        logs = self.useFixture(fixtures.FakeLogger(level=logging.WARNING))
        self.config(send_service_user_token=True, group='service_user')
        auth = service_auth.user_auth(ENDPOINT, TOKEN)
        self.assertIsInstance(auth, token_endpoint.Token)
        self.assertIn('auth_type is not', logs.output)

    def test_incomplete_options(self):
        self.config(send_service_user_token=True, group='service_user')
        self.password_options(username='cinder', password='s3cret-pass')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  service_auth.user_auth, ENDPOINT, TOKEN,
                                  'glance://image')
        self.assertIn('[service_user]', str(error))
        self.assertIn('auth_url', str(error))
        self.assertNotIn('s3cret-pass', str(error))

    def test_options_are_listed_for_the_sample_config(self):
        groups = dict(opts.list_opts())
        names = [opt.dest for opt in groups['service_user']]
        self.assertEqual('send_service_user_token', names[0])
        for name in ('auth_type', 'auth_url', 'username', 'password',
                     'cafile', 'timeout'):
            self.assertIn(name, names)
