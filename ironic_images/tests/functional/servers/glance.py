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
"""A real Glance (PyPI ``glance`` under gunicorn) on 127.0.0.1, for tests.

Glance runs from its own virtualenv, made by ``tools/setup-glance``
(:func:`ensure_venv` runs it when needed), with an sqlite database, the
file store under the server's ``workdir`` and no keystone: the empty paste
flavor accepts any token, or none, and a one-line policy makes every caller
an admin (so tests may create public images).  Every request is logged as
one JSON line, read back by :meth:`GlanceServer.requests_log`.

With ``keystone=`` it is the real thing instead: keystonemiddleware's
``authtoken`` in front (the ``keystone`` paste flavor) against a
:mod:`.keystone` server, and Glance's default policies.

Starting one takes about 3 s, so tests of a class usually share one::

    server = self.useFixture(glance.GlanceFixture(share_with=type(self)))
    image = server.create_image(b'data', name='x')
    path = server.image_path(image['id'])   # the stored bytes
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import requests

from ironic_images.tests.functional.servers import base

#: The environment variable naming the venv (as in tools/setup-glance).
VENV_ENV = 'IRONIC_IMAGES_GLANCE_VENV'
#: The User-Agent of the requests of :meth:`GlanceServer.request`.
HELPER_USER_AGENT = 'ironic-images-glance-fixture'

_REPO_ROOT = os.path.abspath(os.path.join(
    os.path.dirname(__file__), '..', '..', '..', '..'))
# Read at import, before a test patches tempfile.tempdir.
_SYSTEM_TMP = tempfile.gettempdir()

_LOG_FIELDS = ('method', 'path', 'query', 'status', 'bytes_sent', 'range',
               'token', 'service_token', 'content_type', 'user_agent')
# The request line, not %(U)s: Glance rewrites PATH_INFO (drops /v2).
_LOG_FORMAT = ('{"request":"%(r)s","status":"%(s)s","bytes_sent":"%(B)s",'
               '"range":"%({range}i)s","token":"%({x-auth-token}i)s",'
               '"service_token":"%({x-service-token}i)s",'
               '"content_type":"%({content-type}i)s","user_agent":"%(a)s"}')

_CONFIG = """\
[DEFAULT]
enabled_backends = fs:file
show_image_direct_url = %(direct_url)s
[database]
connection = sqlite:///%(workdir)s/glance.sqlite
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = %(data_dir)s/
[os_glance_staging_store]
filesystem_store_datadir = %(workdir)s/staging/
[os_glance_tasks_store]
filesystem_store_datadir = %(workdir)s/tasks/
[paste_deploy]
flavor = %(flavor)s
config_file = %(workdir)s/etc/glance-api-paste.ini
[oslo_policy]
policy_file = %(workdir)s/etc/policy.yaml
[image_format]
require_image_format_match = false
"""

# token_cache_time = -1: every request is checked with Keystone, so a
# revoked or expired token is refused at once.
_KEYSTONE_CONFIG = """\
[keystone_authtoken]
www_authenticate_uri = %(auth_url)s
auth_url = %(auth_url)s
auth_type = password
username = %(username)s
password = %(password)s
project_name = %(project_name)s
user_domain_id = default
project_domain_id = default
token_cache_time = -1
"""


def venv_path():
    """Return the directory of the Glance virtualenv.

    :returns: ``$IRONIC_IMAGES_GLANCE_VENV``, or ``.glance-venv`` in the
        repository.
    """
    return (os.environ.get(VENV_ENV)
            or os.path.join(_REPO_ROOT, '.glance-venv'))


_SETUP = base.SetupScript('Glance', 'setup-glance', venv_path)


def ensure_venv():
    """Make sure the Glance virtualenv exists and works (tools/setup-glance).

    Call it outside of a fixture's ``_setUp``; see
    :class:`~ironic_images.tests.functional.servers.base.SetupScript`.

    :returns: the venv directory.
    """
    return _SETUP.ensure()


class GlanceServer(base.ProcessServer):
    """Glance's API on http://127.0.0.1:``port`` (gunicorn, one worker).

    :param venv: the Glance virtualenv; by default :func:`venv_path` (call
        :func:`ensure_venv` first, or use :class:`GlanceFixture`).
    :param port: the port; by default a free one.
    :param direct_url: set ``show_image_direct_url``, so that images show
        their ``file://`` location in ``direct_url``.
    :param keystone: None for no authentication; or a dict of
        ``auth_url``, ``username``, ``password`` and ``project_name`` (the
        service user of keystonemiddleware, which needs the ``service``
        role to accept service tokens).
    :param workdir: where the configuration, database, images and logs go;
        by default a temporary directory removed by :meth:`stop`.
    :param startup_timeout: seconds to wait for the API to answer.

    Attributes: ``url`` (no trailing slash), ``port``, ``workdir``,
    ``data_dir`` (the file store: an image's bytes are in
    ``data_dir/ID``), ``conf_path``, ``access_log_path`` (empty when
    :meth:`start` returns) and, once started, ``pid``.
    """

    #: gunicorn lets running requests finish for this long on SIGTERM.
    graceful_timeout = 2

    def __init__(self, venv=None, port=None, direct_url=True, workdir=None,
                 startup_timeout=60, keystone=None):
        own_workdir = workdir is None
        if own_workdir:
            # Not in the test's temporary directory (oslotest's
            # NestedTempfile), which goes with the test: a shared server
            # outlives it.
            workdir = tempfile.mkdtemp(prefix='ironic-images-glance-',
                                       dir=_SYSTEM_TMP)
        super(GlanceServer, self).__init__(workdir, startup_timeout)
        self._own_workdir = own_workdir
        self.venv = venv or venv_path()
        self._fixed_port = bool(port)
        self.port = port or base.free_port()
        self.direct_url = direct_url
        self.keystone = keystone
        self.etc_dir = os.path.join(self.workdir, 'etc')
        self.data_dir = os.path.join(self.workdir, 'images')
        self.conf_path = os.path.join(self.etc_dir, 'glance-api.conf')
        self.access_log_path = os.path.join(self.workdir, 'access.log')
        self._session = requests.Session()
        # Marks the helpers' own requests, left out of requests_log().
        self._session.headers['User-Agent'] = HELPER_USER_AGENT

    @property
    def url(self):
        """The endpoint URL, without a trailing slash."""
        return 'http://%s:%d' % (base.LOCALHOST, self.port)

    def config(self):
        """Return the text of glance-api.conf."""
        config = _CONFIG % {'workdir': self.workdir,
                            'data_dir': self.data_dir,
                            'direct_url': str(self.direct_url).lower(),
                            'flavor': 'keystone' if self.keystone else ''}
        if self.keystone:
            config += _KEYSTONE_CONFIG % self.keystone
        return config

    def launch(self):
        """Start gunicorn; retry on another port if a free one was taken."""
        for attempt in range(3):
            try:
                super(GlanceServer, self).launch()
            except RuntimeError:
                if (self._fixed_port or attempt == 2
                        or 'in use' not in self.output()):
                    raise
                self.port = base.free_port()
            else:
                break
        # gunicorn logs the readiness check after answering it: wait for
        # that entry, so that the log starts empty for the caller.
        deadline = time.monotonic() + 5
        while (not any(e['path'] == '/versions' for e in self._read_log())
               and time.monotonic() < deadline):
            time.sleep(0.01)
        self.reset_log()

    def prepare(self):
        for name in ('etc', 'images', 'staging', 'tasks'):
            os.makedirs(os.path.join(self.workdir, name), exist_ok=True)
        shutil.copy(os.path.join(self.venv, 'etc', 'glance',
                                 'glance-api-paste.ini'), self.etc_dir)
        with open(os.path.join(self.etc_dir, 'policy.yaml'), 'w') as f:
            # Behind Keystone, Glance's default policies apply.
            f.write('{}\n' if self.keystone else '"context_is_admin": "@"\n')
        with open(self.conf_path, 'w') as f:
            f.write(self.config())
        db_path = os.path.join(self.workdir, 'glance.sqlite')
        if os.path.exists(db_path):
            return  # a restart in the same workdir keeps its images
        # tools/setup-glance leaves an empty migrated database: a copy
        # saves a db_sync (~2 s) per server.
        template = os.path.join(self.venv, 'ironic-images', 'glance.sqlite')
        if os.path.exists(template):
            shutil.copy(template, db_path)
            return
        with open(self.output_path, 'ab') as out:
            subprocess.run(
                [os.path.join(self.venv, 'bin', 'glance-manage'),
                 '--config-file', self.conf_path, 'db_sync'],
                check=True, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=self.workdir, timeout=300)

    def command(self):
        return [os.path.join(self.venv, 'bin', 'gunicorn'),
                '--bind', '%s:%d' % (base.LOCALHOST, self.port),
                '--workers', '1', '--worker-class', 'gthread',
                '--threads', '4', '--timeout', '600',
                '--graceful-timeout', str(self.graceful_timeout),
                # gunicorn's control socket is one path per user: two
                # servers (Glance and Keystone) would share it.
                '--no-control-socket',
                '--env', 'OS_GLANCE_CONFIG_DIR=%s' % self.etc_dir,
                '--access-logfile', self.access_log_path,
                '--access-logformat', _LOG_FORMAT,
                'glance.wsgi.api:application']

    def is_ready(self):
        # gunicorn binds before its worker has loaded Glance: wait for an
        # answer from Glance itself.
        if not base.port_open(self.port):
            return False
        try:
            resp = self._session.get(self.url + '/versions', timeout=30)
        except requests.RequestException:
            return False
        return resp.status_code == 200

    def stop(self, remove_workdir=True):
        self._session.close()
        if self.process is not None:
            # SIGQUIT is gunicorn's quick shutdown: SIGTERM would wait for
            # idle keep-alive connections until graceful_timeout.
            self._signal(signal.SIGQUIT)
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                pass  # the base class sends SIGTERM, then SIGKILL
        super(GlanceServer, self).stop(remove_workdir)

    # Raw API helpers: they make and check test data without the code
    # under test.

    def request(self, method, path, expected=None, **kwargs):
        """Send a request to the API with plain ``requests``.

        :param method: the HTTP method.
        :param path: the path, e.g. ``/v2/images``.
        :param expected: a status code; another one raises AssertionError.
        :param kwargs: passed to ``requests.Session.request``.
        :returns: the ``requests.Response``.
        """
        kwargs.setdefault('timeout', 60)
        resp = self._session.request(method, self.url + path, **kwargs)
        if expected is not None and resp.status_code != expected:
            raise AssertionError('%s %s: expected %d, got %d: %s'
                                 % (method, path, expected, resp.status_code,
                                    resp.text[:1000]))
        return resp

    def create_image(self, data=None, auth_token=None, **properties):
        """Create an image; upload ``data`` if given.

        :param data: the image bytes; None leaves the image ``queued``.
        :param auth_token: the X-Auth-Token to send (behind Keystone: its
            project owns the image), or None.
        :param properties: the image's properties; ``disk_format`` (raw)
            and ``container_format`` (bare) have defaults.
        :returns: the image, as the API shows it after the upload.
        """
        properties.setdefault('disk_format', 'raw')
        properties.setdefault('container_format', 'bare')
        auth = {'X-Auth-Token': auth_token} if auth_token else {}
        image = self.request('POST', '/v2/images', expected=201,
                             json=properties, headers=auth).json()
        if data is None:
            return image
        headers = {'Content-Type': 'application/octet-stream'}
        headers.update(auth)
        self.request('PUT', '/v2/images/%s/file' % image['id'],
                     expected=204, data=data, headers=headers)
        return self.get_image(image['id'], auth_token)

    def get_image(self, image_id, auth_token=None):
        """Return an image as the API shows it, or None if it is gone."""
        resp = self.request('GET', '/v2/images/%s' % image_id, headers=(
            {'X-Auth-Token': auth_token} if auth_token else {}))
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise AssertionError('GET image %s: %d %s'
                                 % (image_id, resp.status_code, resp.text))
        return resp.json()

    def image_path(self, image_id):
        """Return the path of the stored bytes of an image."""
        return os.path.join(self.data_dir, image_id)

    def reset_log(self):
        """Empty the access log."""
        open(self.access_log_path, 'w').close()

    def requests_log(self, count=0, timeout=5, helpers=False):
        """Return the access log entries, oldest first.

        gunicorn writes an entry once the response is sent, so a client may
        see the response first: ``count`` waits for that many entries.
        The requests of this object's own helpers (:meth:`request`,
        :meth:`create_image`...) are left out unless ``helpers`` is true:
        the log then shows what the code under test asked, even if a
        helper's entry is written late.

        :param count: wait until there are at least this many entries.
        :param timeout: seconds to wait for them.
        :param helpers: include the helpers' requests.
        :returns: a list of dicts with the keys ``method``, ``path``,
            ``query`` (without ``?``; '' if none), ``status`` and
            ``bytes_sent`` (ints; ``bytes_sent`` is the body), ``range``,
            ``token`` (the X-Auth-Token), ``service_token`` (the
            X-Service-Token), ``content_type`` and ``user_agent`` (None
            when absent).
        :raises TimeoutError: if fewer than ``count`` entries appear.
        """
        return base.wait_for_entries(
            lambda: [e for e in self._read_log()
                     if helpers or e['user_agent'] != HELPER_USER_AGENT],
            count, timeout)

    def _read_log(self):
        entries = []
        for raw in base.read_json_log(self.access_log_path):
            entry = {k: None if raw.get(k) in ('', '-') else raw.get(k)
                     for k in _LOG_FIELDS}
            entry['method'], target = raw['request'].split(' ')[:2]
            entry['path'], _sep, entry['query'] = target.partition('?')
            entry['status'] = int(raw['status'])
            entry['bytes_sent'] = (0 if raw['bytes_sent'] == '-'
                                   else int(raw['bytes_sent']))
            entries.append(entry)
        return entries


class GlanceFixture(base.ServerFixture):
    """Run a :class:`GlanceServer` during a test, or share one.

    The virtualenv is set up first if needed (:func:`ensure_venv`: skip
    locally or error in CI if that fails).  Takes the arguments of
    :class:`GlanceServer`; its attributes (``url``, ``data_dir``,
    ``create_image()``...) can be used on the fixture directly.

    :param share_with: a test class: its tests share one server, started
        by the first of them and stopped after the last (a class cleanup).
        Tests that share it must not depend on the images of the others.
    """

    server_class = GlanceServer

    def setUp(self):
        ensure_venv()
        super(GlanceFixture, self).setUp()
