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
"""Service tokens against a real Keystone and a Glance behind it.

Keystone (fernet tokens, sqlite) and Glance behind keystonemiddleware run
from PyPI under gunicorn (:mod:`.servers.keystone`, :mod:`.servers.glance`).
A user's token that has expired is refused on its own; sent beside a valid
token of a service user (``[service_user]``), keystonemiddleware accepts
it and the download goes through, verified.

The expired token is issued from an application credential that expires
a few seconds after it is made; the tests of the class share it.
"""

import datetime
import hashlib
import os
import time
import uuid

import fixtures
from keystoneauth1 import loading as ks_loading
from oslo_context import context as oslo_context

from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images import image_utils
from ironic_images.tests import base
from ironic_images.tests.functional.servers import glance
from ironic_images.tests.functional.servers import keystone

DATA = os.urandom(2 * 1024 * 1024 + 321)
PASSWORDS = {'glance': 'glance-secret-%s' % uuid.uuid4().hex[:8],
             'cinder': 'cinder-secret-%s' % uuid.uuid4().hex[:8],
             'demo': 'demo-secret-%s' % uuid.uuid4().hex[:8]}


class ServiceTokenTestCase(base.TestCase):
    """Keystone and a Glance behind it, shared by the tests of a class."""

    _world = None  # what the class's servers hold, made once

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(180, gentle=True))
        self.keystone = self.useFixture(
            keystone.KeystoneFixture(share_with=type(self)))
        world = self._make_world()
        self.glance = self.useFixture(glance.GlanceFixture(
            share_with=type(self), keystone={
                'auth_url': self.keystone.url, 'username': 'glance',
                'password': PASSWORDS['glance'],
                'project_name': 'service'}))
        self._finish_world(world)
        self.world = world
        self.dest_dir = self.useFixture(fixtures.TempDir()).path
        self.dest = os.path.join(self.dest_dir, 'disk')
        # The service's own [glance] auth: its catalog gives Glance's URL.
        self.password_auth('glance', 'cinder')
        self.glance.reset_log()

    def _make_world(self):
        cls = type(self)
        world = cls._world
        if world is not None and world['keystone'] is self.keystone.server:
            return world
        ks = self.keystone
        service = ks.create_project('service')
        demo = ks.create_project('demo')
        world = {
            'keystone': ks.server,
            'demo_user': ks.create_user('demo', PASSWORDS['demo'], demo,
                                        'member'),
            'demo_project': demo,
        }
        # keystonemiddleware's user, and the user of our [service_user]:
        # both need the service role for service tokens.
        ks.create_user('glance', PASSWORDS['glance'], service, 'service')
        ks.create_user('cinder', PASSWORDS['cinder'], service, 'service')
        cls._world = world
        return world

    def _finish_world(self, world):
        if 'image' in world:
            return
        self.keystone.create_endpoints('image', 'glance', self.glance.url)
        user_token = self.demo_token()
        world['image'] = self.glance.create_image(
            DATA, auth_token=user_token, name='service-token-test')['id']
        world['expired'], expiry = self.keystone.expiring_token(
            user_token, world['demo_user'], seconds=2)
        # Tokens are checked to the second: wait until it is past.
        while datetime.datetime.now(datetime.timezone.utc) <= (
                expiry + datetime.timedelta(seconds=1)):
            time.sleep(0.2)

    def demo_token(self):
        return self.keystone.password_token(
            'demo', PASSWORDS['demo'], 'demo')[0]

    def password_auth(self, group, user, project='service', password=None):
        """Set keystoneauth password options of ``user`` in ``group``."""
        options = ks_loading.get_auth_plugin_conf_options('password')
        # Another plugin loaded by an earlier test may have registered an
        # option of the same name but another definition.
        for option in options:
            if option.dest in CONF[group]:
                CONF.unregister_opt(option, group=group)
        self.cfg_fixture.register_opts(options, group=group)
        self.config(auth_type='password', auth_url=self.keystone.url,
                    username=user,
                    password=password or PASSWORDS[user],
                    project_name=project, user_domain_id='default',
                    project_domain_id='default', group=group)

    def context(self, token):
        return oslo_context.RequestContext(
            auth_token=token, user_id=self.world['demo_user'],
            project_id=self.world['demo_project'])

    def file_gets(self):
        path = '/v2/images/%s/file' % self.world['image']
        return [e for e in self.glance.requests_log()
                if e['method'] == 'GET' and e['path'] == path]


class TestServiceTokens(ServiceTokenTestCase):

    def test_expired_user_token_alone_is_refused(self):
        # [service_user]send_service_user_token is False by default.
        self.assertRaises(exception.ImageNotAuthorized, image_utils.fetch,
                          self.context(self.world['expired']),
                          self.world['image'], self.dest)
        self.assertEqual([], os.listdir(self.dest_dir))
        entries = [e for e in self.glance.requests_log(count=1)
                   if e['token'] == self.world['expired']]
        self.assertEqual([401], [e['status'] for e in entries])
        self.assertEqual([None], [e['service_token'] for e in entries])

    def test_expired_user_token_with_a_service_token_downloads(self):
        self.config(send_service_user_token=True, group='service_user')
        self.password_auth('service_user', 'cinder')
        fetched = image_utils.fetch(self.context(self.world['expired']),
                                    self.world['image'], self.dest)
        with open(self.dest, 'rb') as f:
            self.assertEqual(DATA, f.read())
        self.assertEqual('sha512:' + hashlib.sha512(DATA).hexdigest(),
                         fetched.checksum)
        gets = self.file_gets()
        self.assertEqual([200], [e['status'] for e in gets])
        self.assertEqual([self.world['expired']], [e['token'] for e in gets])
        service_token = gets[0]['service_token']
        self.assertIsNotNone(service_token)
        self.assertNotEqual(self.world['expired'], service_token)

    def test_valid_user_token_is_sent_with_a_service_token(self):
        self.config(send_service_user_token=True, group='service_user')
        self.password_auth('service_user', 'cinder')
        token = self.demo_token()
        image_utils.fetch(self.context(token), self.world['image'],
                          self.dest)
        gets = self.file_gets()
        self.assertEqual([(200, token)],
                         [(e['status'], e['token']) for e in gets])
        self.assertIsNotNone(gets[0]['service_token'])

    def test_a_service_token_needs_a_service_role(self):
        # The demo user's own token as the service token: it has no
        # service role, so keystonemiddleware refuses the expired one.
        self.config(send_service_user_token=True, group='service_user')
        self.password_auth('service_user', 'demo', project='demo')
        self.assertRaises(exception.ImageNotAuthorized, image_utils.fetch,
                          self.context(self.world['expired']),
                          self.world['image'], self.dest)
        self.assertEqual([], os.listdir(self.dest_dir))

    def test_service_user_refused_by_keystone(self):
        self.config(send_service_user_token=True, group='service_user')
        self.password_auth('service_user', 'cinder',
                           password='wrong-password-1234')
        error = self.assertRaises(
            exception.ImageServiceAuthenticationRequired, image_utils.fetch,
            self.context(self.demo_token()), self.world['image'], self.dest)
        self.assertIn('[service_user]', str(error))
        self.assertNotIn('wrong-password-1234', str(error))
        self.assertEqual([], self.file_gets())
        self.assertEqual([], os.listdir(self.dest_dir))
