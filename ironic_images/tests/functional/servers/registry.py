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
"""Debian's ``docker-registry`` (CNCF distribution 2.8) on 127.0.0.1.

Filesystem storage under the server's ``workdir``, deletes enabled, and
optionally Basic auth (bcrypt htpasswd), TLS, Bearer tokens from a
:class:`~.token_server.TokenServer`, and blob redirects to an nginx serving
the storage root.  Push fixtures with :mod:`.oci_push`.

Example::

    registry = self.useFixture(registry.RegistryFixture(
        htpasswd=('user', 'secret'), tls=tls.make_test_ca(self.tmp)))
    pushed = oci_push.push_disk_image_fixture(registry, 'os/disk', 'v1',
                                              files={...})
    href = registry.oci_url('os/disk', 'v1')   # oci://127.0.0.1:PORT/...

Quirks of this registry (see REAL_SERVERS.md): a GET of an index needs
the index media type in ``Accept`` (else 404 MANIFEST_UNKNOWN); tag paging
(``n``, ``last``) is ignored; blob GETs honour Range (206).
"""

import json
import os
import shutil
import subprocess

import requests

from ironic_images.tests.functional.servers import base
from ironic_images.tests.functional.servers import nginx as nginx_server
from ironic_images.tests.functional.servers import oci_push


def _server_of(obj):
    """The server of a ServerFixture, or the object itself."""
    server = getattr(obj, 'server', None)
    return server if server is not None else obj


class RegistryServer(base.ProcessServer):
    """``docker-registry serve CONFIG`` on http(s)://127.0.0.1:``port``.

    :param htpasswd: ``(user, password)``: require Basic auth (the file is
        made with ``htpasswd -Bbn``: the registry needs bcrypt).
    :param tls: a :data:`~.tls.CAFiles` (from :func:`~.tls.make_test_ca`):
        serve https with its ``cert`` and ``key``; clients pass
        ``verify=tls.ca_cert`` (also in the ``verify`` attribute).
    :param token_auth: a :class:`~.token_server.TokenServer` (or its
        fixture), started or not: require its Bearer tokens (``realm``,
        ``service``, ``issuer`` and ``rootcertbundle`` from it).  Exclusive
        with ``htpasswd``.
    :param redirect_to_nginx: start an nginx serving the storage root and
        make blob GET/HEAD answer 307 to it (https too when ``tls``).
    :param redirect_host: the host name in the redirect URLs, e.g.
        ``'localhost'`` for a host other than the registry's.
    :param port: the port; by default a free one.
    :param workdir: for the configuration, storage, logs; by default a
        temporary directory removed by :meth:`stop`.
    :param startup_timeout: seconds to wait until ``GET /v2/`` answers.

    Attributes: ``url`` (``http(s)://127.0.0.1:PORT``, no trailing slash),
    ``host`` (``127.0.0.1:PORT``), ``port``, ``scheme``, ``verify`` (the
    CA path with ``tls``, else True), ``data_dir`` (the storage root),
    ``config_path``, ``htpasswd``, ``token_server``, ``tls``, ``nginx``
    (the :class:`~.nginx.NginxServer` when redirecting, else None),
    ``push_auth`` (a requests auth that can push), ``workdir``, ``pid``.
    """

    binaries = ('docker-registry',)

    def __init__(self, htpasswd=None, tls=None, token_auth=None,
                 redirect_to_nginx=False, redirect_host=base.LOCALHOST,
                 port=None, workdir=None, startup_timeout=10):
        if htpasswd and token_auth:
            raise ValueError('htpasswd and token_auth are exclusive')
        if htpasswd:
            base.require_binary('htpasswd')
        super(RegistryServer, self).__init__(workdir, startup_timeout)
        self.htpasswd = tuple(htpasswd) if htpasswd else None
        self.tls = tls
        self.token_server = (_server_of(token_auth) if token_auth
                             else None)
        self.redirect_host = redirect_host
        self._fixed_port = bool(port)
        self.port = port or base.free_port()
        self.scheme = 'https' if tls else 'http'
        self.verify = tls.ca_cert if tls else True
        self.data_dir = os.path.join(self.workdir, 'data')
        self.config_path = os.path.join(self.workdir, 'config.yml')
        self.htpasswd_path = os.path.join(self.workdir, 'htpasswd')
        self.nginx = None
        if redirect_to_nginx:
            self.nginx = nginx_server.NginxServer(
                self.data_dir, workdir=os.path.join(self.workdir, 'nginx'),
                tls_cert=tls.cert if tls else None,
                tls_key=tls.key if tls else None)

    @property
    def host(self):
        """``127.0.0.1:PORT``, as in an ``oci://`` URL."""
        return '%s:%d' % (base.LOCALHOST, self.port)

    @property
    def url(self):
        """The base URL, without a trailing slash."""
        return '%s://%s' % (self.scheme, self.host)

    def url_for(self, path):
        """Return the URL of ``path`` (e.g. ``/v2/NAME/tags/list``)."""
        return '%s/%s' % (self.url, path.lstrip('/'))

    def oci_url(self, repo, ref=None):
        """Return ``oci://HOST/REPO[:TAG|@DIGEST]``.

        :param ref: a tag, a digest (``sha256:...``), or None.
        """
        url = 'oci://%s/%s' % (self.host, repo)
        if ref and ':' in ref:
            return '%s@%s' % (url, ref)
        if ref:
            return '%s:%s' % (url, ref)
        return url

    def blob_path(self, digest):
        """The file holding a blob in the storage (to corrupt it...)."""
        algo, _, hexdigest = digest.partition(':')
        return os.path.join(self.data_dir, 'docker', 'registry', 'v2',
                            'blobs', algo, hexdigest[:2], hexdigest, 'data')

    def redirect_url(self, digest):
        """The URL a blob GET redirects to (with ``redirect_to_nginx``)."""
        if self.nginx is None:
            raise ValueError('the registry does not redirect')
        algo, _, hexdigest = digest.partition(':')
        return '%s://%s:%d/docker/registry/v2/blobs/%s/%s/%s/data' % (
            self.nginx.scheme, self.redirect_host, self.nginx.port, algo,
            hexdigest[:2], hexdigest)

    @property
    def push_auth(self):
        """A requests auth allowed to push and delete, or None.

        Basic credentials, or a :class:`~.oci_push.RegistryAuth` minting
        tokens with the token server's key (not recorded by it).
        """
        if self.htpasswd:
            return self.htpasswd
        if self.token_server is not None:
            return oci_push.RegistryAuth(
                token_factory=self._mint_token, verify=self.verify)
        return None

    def _mint_token(self, service, scopes):
        return self.token_server.make_token(scopes, sub='fixture-pusher')

    def config(self):
        """Return the configuration (YAML, written as JSON)."""
        http = {'addr': self.host, 'secret': 'ironic-images-test-secret'}
        if self.tls:
            http['tls'] = {'certificate': self.tls.cert,
                           'key': self.tls.key}
        config = {
            'version': '0.1',
            'log': {'level': 'info', 'formatter': 'text',
                    'accesslog': {'disabled': False}},
            'storage': {
                'filesystem': {'rootdirectory': self.data_dir},
                'delete': {'enabled': True},
                'maintenance': {'uploadpurging': {'enabled': False}},
            },
            'http': http,
        }
        if self.htpasswd:
            config['auth'] = {'htpasswd': {'realm': 'test-realm',
                                           'path': self.htpasswd_path}}
        elif self.token_server is not None:
            config['auth'] = {'token': {
                'realm': self.token_server.realm,
                'service': self.token_server.service,
                'issuer': self.token_server.issuer,
                'rootcertbundle': self.token_server.cert_path}}
        if self.nginx is not None:
            baseurl = '%s://%s:%d/' % (self.nginx.scheme, self.redirect_host,
                                       self.nginx.port)
            config['middleware'] = {'storage': [
                {'name': 'redirect', 'options': {'baseurl': baseurl}}]}
        return json.dumps(config, indent=2)

    def prepare(self):
        os.makedirs(self.data_dir, exist_ok=True)
        if self.htpasswd:
            self._write_htpasswd()
        if self.nginx is not None and self.nginx.process is None:
            self.nginx.start()
        with open(self.config_path, 'w') as f:
            f.write(self.config())

    def _write_htpasswd(self):
        user, password = self.htpasswd
        result = subprocess.run(
            [base.require_binary('htpasswd'), '-Bbn', user, password],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=60)
        with open(self.htpasswd_path, 'wb') as f:
            f.write(result.stdout)

    def command(self):
        return ['docker-registry', 'serve', self.config_path]

    def is_ready(self):
        try:
            resp = requests.get(self.url + '/v2/', verify=self.verify,
                                timeout=1, allow_redirects=False)
        except requests.RequestException:
            return False
        return resp.status_code in (200, 401)

    def launch(self):
        """Start the registry; retry on another port if one was taken."""
        for attempt in range(3):
            try:
                return super(RegistryServer, self).launch()
            except (RuntimeError, TimeoutError):
                if (self._fixed_port or attempt == 2
                        or 'address already in use' not in
                        self.output().lower()):
                    raise
                self.port = base.free_port()

    def stop(self, remove_workdir=True):
        """Stop the registry and its nginx, by PID; safe to repeat."""
        super(RegistryServer, self).stop(remove_workdir=False)
        if self.nginx is not None:
            self.nginx.stop()
        if remove_workdir and self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class RegistryFixture(base.ServerFixture):
    """Run a :class:`RegistryServer` during a test.

    Takes the arguments of :class:`RegistryServer`; the server is in
    ``server``, and ``url``, ``host``, ``verify``, ``push_auth``,
    ``oci_url()``, ``blob_path()``, ``nginx``... can be used on the
    fixture directly.
    """

    server_class = RegistryServer

    def setUp(self):
        # Skip (outside CI) before the fixture starts if a program that
        # the options need is missing.
        if self._kwargs.get('htpasswd'):
            base.require_binary('htpasswd')
        if self._kwargs.get('redirect_to_nginx'):
            base.require_binary('nginx')
        super(RegistryFixture, self).setUp()
