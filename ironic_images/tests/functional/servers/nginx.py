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
"""nginx serving a directory on 127.0.0.1, for tests and benchmarks.

nginx gives real sendfile, Range (206), If-Range, HEAD, ETag and
Last-Modified.  Redirects are raw ``location`` blocks (see
:func:`redirect_location`); ``limit_rate`` makes a slow server.  Every
request is logged as one JSON line, read back by
:meth:`NginxServer.requests_log`.

Example::

    server = self.useFixture(nginx.NginxFixture(root_dir))
    requests.get(server.url_for('/disk.img'), verify=False)
    log = server.requests_log(count=1)
"""

import os
import subprocess

from ironic_images.tests.functional.servers import base

_LOG_FIELDS = ('method', 'uri', 'status', 'bytes_sent', 'body_bytes_sent',
               'range', 'if_range', 'if_none_match', 'if_modified_since',
               'authorization', 'user_agent', 'time')

_CONFIG = """\
daemon off;
worker_processes 1;
%(user)s
pid "%(workdir)s/nginx.pid";
error_log "%(workdir)s/error.log" info;
events {
    worker_connections 512;
}
http {
    default_type application/octet-stream;
    client_body_temp_path "%(workdir)s/tmp/client_body";
    proxy_temp_path "%(workdir)s/tmp/proxy";
    fastcgi_temp_path "%(workdir)s/tmp/fastcgi";
    uwsgi_temp_path "%(workdir)s/tmp/uwsgi";
    scgi_temp_path "%(workdir)s/tmp/scgi";
    map $http_authorization $ironic_images_auth {
        "" "0";
        default "1";
    }
    log_format ironic_images escape=json
        '{"method":"$request_method","uri":"$request_uri",'
        '"status":"$status","bytes_sent":"$bytes_sent",'
        '"body_bytes_sent":"$body_bytes_sent","range":"$http_range",'
        '"if_range":"$http_if_range","if_none_match":"$http_if_none_match",'
        '"if_modified_since":"$http_if_modified_since",'
        '"authorization":"$ironic_images_auth",'
        '"user_agent":"$http_user_agent","time":"$msec"}';
    access_log "%(access_log)s" ironic_images;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30s;
    server {
        listen 127.0.0.1:%(port)d%(ssl)s;
        server_name localhost;
        root "%(root_dir)s";
%(server)s
    }
}
"""


def make_htpasswd(path, user, password, bcrypt=False):
    """Create (or overwrite) an htpasswd file with one user.

    :param path: the file to write.
    :param bcrypt: use bcrypt (``-B``) instead of the default MD5.
    :returns: ``path``.
    """
    argv = [base.require_binary('htpasswd'), '-bc']
    if bcrypt:
        argv.append('-B')
    subprocess.run(argv + [path, user, password], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, timeout=60)
    return path


def redirect_location(path, target, status=302):
    """Return a ``location`` block redirecting one exact path.

    :param path: the path that redirects, e.g. ``/old.img``.
    :param target: the ``Location``, absolute or a path.
    :param status: 301, 302, 303, 307 or 308.
    """
    return 'location = %s {\n    return %d %s;\n}\n' % (path, status, target)


class NginxServer(base.ProcessServer):
    """nginx serving ``root_dir`` on http(s)://127.0.0.1:``port``.

    :param root_dir: the directory to serve.
    :param port: the port; by default a free one.
    :param locations: raw nginx text added to the ``server`` block, e.g.
        ``location`` blocks from :func:`redirect_location`.
    :param limit_rate: bytes per second per connection (an int, or an nginx
        size such as ``'1m'``).
    :param tls_cert: a PEM certificate; with ``tls_key``, serve https.
    :param tls_key: the PEM key of ``tls_cert``.
    :param htpasswd: an htpasswd file (see :func:`make_htpasswd`); if
        given, every request needs HTTP basic auth.
    :param workdir: where the configuration, logs and pid go; by default a
        temporary directory removed by :meth:`stop`.
    :param startup_timeout: seconds to wait for the port to accept.

    Attributes: ``url`` (no trailing slash), ``port``, ``scheme``,
    ``root_dir``, ``workdir``, ``conf_path``, ``access_log_path``,
    ``error_log_path`` and, once started, ``pid``.
    """

    binaries = ('nginx',)

    def __init__(self, root_dir, port=None, locations='', limit_rate=None,
                 tls_cert=None, tls_key=None, htpasswd=None, workdir=None,
                 startup_timeout=10):
        if bool(tls_cert) != bool(tls_key):
            raise ValueError('tls_cert and tls_key go together')
        super(NginxServer, self).__init__(workdir, startup_timeout)
        self.root_dir = os.path.abspath(root_dir)
        self._fixed_port = bool(port)
        self.port = port or base.free_port()
        self.locations = locations
        self.limit_rate = limit_rate
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.htpasswd = htpasswd
        self.scheme = 'https' if tls_cert else 'http'
        self.conf_path = os.path.join(self.workdir, 'nginx.conf')
        self.access_log_path = os.path.join(self.workdir, 'access.log')
        self.error_log_path = os.path.join(self.workdir, 'error.log')

    @property
    def url(self):
        """The base URL, without a trailing slash."""
        return '%s://%s:%d' % (self.scheme, base.LOCALHOST, self.port)

    def url_for(self, path):
        """Return the URL of ``path`` (relative to ``root_dir``)."""
        return '%s/%s' % (self.url, path.lstrip('/'))

    def config(self):
        """Return the text of nginx.conf."""
        server = []
        if self.tls_cert:
            server += ['ssl_certificate "%s";' % self.tls_cert,
                       'ssl_certificate_key "%s";' % self.tls_key]
        if self.limit_rate is not None:
            server.append('limit_rate %s;' % self.limit_rate)
        if self.htpasswd:
            server += ['auth_basic "ironic-images test";',
                       'auth_basic_user_file "%s";' % self.htpasswd]
        server += self.locations.splitlines()
        return _CONFIG % {
            # Workers run as "nobody" by default, which cannot read the
            # root-only temporary directories.
            'user': 'user root;' if os.geteuid() == 0 else '',
            'workdir': self.workdir,
            'access_log': self.access_log_path,
            'port': self.port,
            'ssl': ' ssl' if self.tls_cert else '',
            'root_dir': self.root_dir,
            'server': '\n'.join('        ' + line for line in server),
        }

    def launch(self):
        """Start nginx; retry on another port if a free one was taken."""
        for attempt in range(3):
            try:
                return super(NginxServer, self).launch()
            except RuntimeError:
                if (self._fixed_port or attempt == 2
                        or 'Address already in use' not in self.output()):
                    raise
                self.port = base.free_port()

    def prepare(self):
        os.makedirs(os.path.join(self.workdir, 'tmp'), exist_ok=True)
        with open(self.conf_path, 'w') as f:
            f.write(self.config())

    def command(self):
        return ['nginx', '-c', self.conf_path, '-p', self.workdir,
                '-e', self.error_log_path]

    def is_ready(self):
        # nginx writes its pid file once it has bound its port: until then,
        # the port may belong to someone else.
        return (os.path.exists(os.path.join(self.workdir, 'nginx.pid'))
                and base.port_open(self.port))

    def output(self):
        text = super(NginxServer, self).output()
        try:
            with open(self.error_log_path, errors='replace') as f:
                return text + f.read()
        except OSError:
            return text

    def reset_log(self):
        """Empty the access log (nginx keeps appending to it)."""
        open(self.access_log_path, 'w').close()

    def requests_log(self, count=0, timeout=5):
        """Return the access log entries, oldest first.

        nginx writes an entry once the response is sent, so a client may
        see the response first: ``count`` waits for that many entries.

        :param count: wait until there are at least this many entries.
        :param timeout: seconds to wait for them.
        :returns: a list of dicts with the keys ``method``, ``uri`` (with
            the query string), ``status``, ``bytes_sent`` (headers
            included), ``body_bytes_sent``, ``range``, ``if_range``,
            ``if_none_match``, ``if_modified_since`` (the header values, or
            None when absent), ``authorization`` (a bool: the header was
            present), ``user_agent`` and ``time`` (epoch seconds).
        :raises TimeoutError: if fewer than ``count`` entries appear.
        """
        return base.wait_for_entries(self._read_log, count, timeout)

    def _read_log(self):
        entries = []
        for raw in base.read_json_log(self.access_log_path):
            entry = {k: raw.get(k) or None for k in _LOG_FIELDS}
            for key in ('status', 'bytes_sent', 'body_bytes_sent'):
                entry[key] = int(raw[key])
            entry['authorization'] = raw['authorization'] == '1'
            entry['time'] = float(raw['time'])
            entries.append(entry)
        return entries


class NginxFixture(base.ServerFixture):
    """Run an :class:`NginxServer` during a test.

    Takes the arguments of :class:`NginxServer`; the server is in
    ``server``, and ``url``, ``port``, ``url_for()``, ``requests_log()``
    etc. can be used on the fixture directly.
    """

    server_class = NginxServer
