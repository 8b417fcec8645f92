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
"""A real Keystone (PyPI ``keystone`` under gunicorn) on 127.0.0.1.

Keystone runs from its own virtualenv, made by ``tools/setup-keystone``
(:func:`ensure_venv` runs it when needed), with an sqlite database and
fernet tokens. The script leaves a bootstrapped template (an ``admin``
user, project and role, the ``member``, ``reader`` and ``service`` roles,
region RegionOne); each server copies it and points the catalog's
identity endpoints at its own port once started.

The helpers make test data with plain REST calls as the admin::

    keystone = self.useFixture(keystone.KeystoneFixture(share_with=cls))
    project = keystone.create_project('demo')
    user = keystone.create_user('demo', 'pw', project, 'member')
    token, body = keystone.password_token('demo', 'pw', 'demo')
"""

import datetime
import os
import shutil
import tempfile

import requests

from ironic_images.tests.functional.servers import base

#: The environment variable naming the venv (as in tools/setup-keystone).
VENV_ENV = 'IRONIC_IMAGES_KEYSTONE_VENV'
#: The template's admin, as tools/setup-keystone bootstraps it.
ADMIN_USER = 'admin'
ADMIN_PASSWORD = 'ironic-images-admin'
ADMIN_PROJECT = 'admin'
REGION = 'RegionOne'
DOMAIN = 'default'

_REPO_ROOT = os.path.abspath(os.path.join(
    os.path.dirname(__file__), '..', '..', '..', '..'))
_SYSTEM_TMP = tempfile.gettempdir()

_CONFIG = """\
[DEFAULT]
[database]
connection = sqlite:///%(workdir)s/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = %(workdir)s/fernet
[fernet_receipts]
key_repository = %(workdir)s/fernet
[credential]
key_repository = %(workdir)s/credential
[identity]
password_hash_rounds = 4
"""

# keystone.wsgi.api parses gunicorn's own command line with oslo.config
# and dies: this module gives it none.
_WSGI = """\
import os
import sys
sys.argv = sys.argv[:1]
os.environ['OS_KEYSTONE_CONFIG_FILES'] = %(conf)r
from keystone.server import wsgi
application = wsgi.initialize_public_application()
"""


def venv_path():
    """Return the directory of the Keystone virtualenv.

    :returns: ``$IRONIC_IMAGES_KEYSTONE_VENV``, or ``.keystone-venv`` in
        the repository.
    """
    return (os.environ.get(VENV_ENV)
            or os.path.join(_REPO_ROOT, '.keystone-venv'))


_SETUP = base.SetupScript('Keystone', 'setup-keystone', venv_path)


def ensure_venv():
    """Make sure the Keystone virtualenv exists and works.

    It is made by tools/setup-keystone when missing or broken.

    Call it outside of a fixture's ``_setUp``; see
    :class:`~ironic_images.tests.functional.servers.base.SetupScript`.

    :returns: the venv directory.
    """
    return _SETUP.ensure()


class KeystoneServer(base.ProcessServer):
    """Keystone's API on http://127.0.0.1:``port``/v3 (gunicorn).

    :param venv: the Keystone virtualenv; by default :func:`venv_path`.
    :param port: the port; by default a free one.
    :param workdir: where the configuration, database and keys go; by
        default a temporary directory removed by :meth:`stop`.
    :param startup_timeout: seconds to wait for the API to answer.

    Attributes: ``url`` (``http://127.0.0.1:PORT/v3``), ``port``,
    ``workdir`` and, once started, ``pid``.
    """

    def __init__(self, venv=None, port=None, workdir=None,
                 startup_timeout=90):
        own_workdir = workdir is None
        if own_workdir:
            workdir = tempfile.mkdtemp(prefix='ironic-images-keystone-',
                                       dir=_SYSTEM_TMP)
        super().__init__(workdir, startup_timeout)
        self._own_workdir = own_workdir
        self.venv = venv or venv_path()
        self.port = port or base.free_port()
        self.conf_path = os.path.join(self.workdir, 'keystone.conf')
        self._session = requests.Session()
        self._admin_token = None

    @property
    def url(self):
        """The identity endpoint, ``http://127.0.0.1:PORT/v3``."""
        return 'http://%s:%d/v3' % (base.LOCALHOST, self.port)

    def prepare(self):
        template = os.path.join(self.venv, 'ironic-images', 'template')
        if not os.path.exists(os.path.join(self.workdir, 'keystone.db')):
            shutil.copy(os.path.join(template, 'keystone.db'), self.workdir)
            for name in ('fernet', 'credential'):
                shutil.copytree(os.path.join(template, name),
                                os.path.join(self.workdir, name))
        with open(self.conf_path, 'w') as f:
            f.write(_CONFIG % {'workdir': self.workdir})
        with open(os.path.join(self.workdir, 'keystone_wsgi.py'), 'w') as f:
            f.write(_WSGI % {'conf': self.conf_path})

    def command(self):
        return [os.path.join(self.venv, 'bin', 'gunicorn'),
                '--bind', '%s:%d' % (base.LOCALHOST, self.port),
                '--workers', '1', '--worker-class', 'gthread',
                '--threads', '4', '--timeout', '120',
                '--no-control-socket', '--chdir', self.workdir,
                'keystone_wsgi:application']

    def is_ready(self):
        if not base.port_open(self.port):
            return False
        try:
            resp = self._session.get(self.url, timeout=30)
        except requests.RequestException:
            return False
        return resp.status_code == 200

    def launch(self):
        super().launch()
        self._point_catalog_here()

    def stop(self, remove_workdir=True):
        self._session.close()
        super().stop(remove_workdir)

    # REST helpers, as the template's admin.

    def request(self, method, path, token=None, expected=None, **kwargs):
        """Send a request to the identity API with plain ``requests``.

        :param path: from ``/v3`` on, e.g. ``/users``.
        :param token: the X-Auth-Token; by default the admin's.
        :param expected: a status code; another raises AssertionError.
        :returns: the ``requests.Response``.
        """
        kwargs.setdefault('timeout', 60)
        headers = dict(kwargs.pop('headers', None) or {})
        headers['X-Auth-Token'] = token or self.admin_token()
        resp = self._session.request(method, self.url + path,
                                     headers=headers, **kwargs)
        if expected is not None and resp.status_code != expected:
            raise AssertionError('%s %s: expected %d, got %d: %s'
                                 % (method, path, expected, resp.status_code,
                                    resp.text[:1000]))
        return resp

    def _auth(self, body, expected=201):
        resp = self._session.post(self.url + '/auth/tokens',
                                  json={'auth': body}, timeout=60)
        if resp.status_code != expected:
            raise AssertionError('POST /auth/tokens: expected %d, got %d: %s'
                                 % (expected, resp.status_code,
                                    resp.text[:1000]))
        return resp.headers['X-Subject-Token'], resp.json()['token']

    def password_token(self, user, password, project):
        """A project-scoped token of a user of the default domain.

        :returns: ``(token, the token's JSON body)``.
        """
        return self._auth({
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': user, 'domain': {'id': DOMAIN},
                'password': password}}},
            'scope': {'project': {'name': project,
                                  'domain': {'id': DOMAIN}}}})

    def admin_token(self):
        """The admin's token, fetched once."""
        if self._admin_token is None:
            self._admin_token = self.password_token(
                ADMIN_USER, ADMIN_PASSWORD, ADMIN_PROJECT)[0]
        return self._admin_token

    def _point_catalog_here(self):
        services = self.request('GET', '/services', expected=200,
                                params={'type': 'identity'}).json()
        service_id = services['services'][0]['id']
        endpoints = self.request('GET', '/endpoints', expected=200,
                                 params={'service_id': service_id}).json()
        for endpoint in endpoints['endpoints']:
            self.request('PATCH', '/endpoints/%s' % endpoint['id'],
                         expected=200, json={'endpoint': {'url': self.url}})

    def role_id(self, name):
        """The id of a role, by name."""
        roles = self.request('GET', '/roles', expected=200,
                             params={'name': name}).json()['roles']
        return roles[0]['id']

    def create_project(self, name):
        """Create a project in the default domain; return its id."""
        return self.request('POST', '/projects', expected=201, json={
            'project': {'name': name, 'domain_id': DOMAIN}}
        ).json()['project']['id']

    def create_user(self, name, password, project_id, role):
        """Create a user with ``role`` on a project; return its id."""
        user_id = self.request('POST', '/users', expected=201, json={
            'user': {'name': name, 'password': password,
                     'domain_id': DOMAIN,
                     'default_project_id': project_id}}
        ).json()['user']['id']
        self.request('PUT', '/projects/%s/users/%s/roles/%s' % (
            project_id, user_id, self.role_id(role)), expected=204)
        return user_id

    def create_endpoints(self, service_type, name, url):
        """A catalog service with public, internal and admin endpoints."""
        service_id = self.request('POST', '/services', expected=201, json={
            'service': {'type': service_type, 'name': name}}
        ).json()['service']['id']
        for interface in ('public', 'internal', 'admin'):
            self.request('POST', '/endpoints', expected=201, json={
                'endpoint': {'service_id': service_id, 'url': url,
                             'interface': interface, 'region_id': REGION}})
        return service_id

    def expiring_token(self, user_token, user_id, seconds):
        """A token that expires ``seconds`` from now (at least about 1).

        It is issued from an application credential of the user that
        expires then: tokens issued from one expire with it.

        :param user_token: a valid token of the user, scoped to the
            project the new token is for.
        :param user_id: the user's id.
        :returns: ``(token, its expiry as an aware datetime)``.
        """
        expires = (datetime.datetime.now(datetime.timezone.utc)
                   + datetime.timedelta(seconds=seconds)).replace(
                       microsecond=0)
        credential = self.request(
            'POST', '/users/%s/application_credentials' % user_id,
            token=user_token, expected=201,
            json={'application_credential': {
                'name': 'expiring-%s' % expires.timestamp(),
                'expires_at': expires.strftime('%Y-%m-%dT%H:%M:%S')}}
        ).json()['application_credential']
        token, body = self._auth({'identity': {
            'methods': ['application_credential'],
            'application_credential': {'id': credential['id'],
                                       'secret': credential['secret']}}})
        expiry = datetime.datetime.strptime(
            body['expires_at'], '%Y-%m-%dT%H:%M:%S.%fZ').replace(
                tzinfo=datetime.timezone.utc)
        return token, expiry


class KeystoneFixture(base.ServerFixture):
    """Run a :class:`KeystoneServer` during a test, or share one.

    The virtualenv is set up first if needed (:func:`ensure_venv`).

    :param share_with: a test class whose tests share one server, stopped
        after the last of them.
    """

    server_class = KeystoneServer

    def setUp(self):
        ensure_venv()
        super().setUp()
