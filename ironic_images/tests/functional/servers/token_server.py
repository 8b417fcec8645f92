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
"""A Bearer token server for the distribution registry's ``auth: token``.

The registry has no token server of its own.  This one answers
``GET /token?service=SERVICE&scope=repository:NAME:pull`` with
``{"token", "access_token", "expires_in", "issued_at"}``; the token is an
RS256 JWT whose header carries ``x5c`` (the DER of :attr:`cert_path`, a
self-signed certificate made here) and whose claims are ``iss``, ``aud``
(the service), ``sub``, ``exp``, ``nbf``, ``iat``, ``jti`` and ``access``.
Point the registry's ``rootcertbundle`` at :attr:`TokenServer.cert_path`
(:class:`~.registry.RegistryServer` does so with ``token_auth=``).

Example::

    tokens = self.useFixture(token_server.TokenServerFixture(
        users={'user': 'secret'}))
    registry = self.useFixture(registry.RegistryFixture(
        token_auth=tokens.server))
    ...
    self.assertEqual(1, tokens.request_count)
    self.assertTrue(tokens.requests[0].basic_auth)

Tokens asked over HTTP grant the requested actions that are in
``actions`` (``pull`` by default) on the repositories allowed by
``repositories`` (all by default); others get an empty grant, which the
registry answers with 401 ``error="insufficient_scope"``.
:meth:`TokenServer.make_token` mints any token without a request (for
pushing fixtures: it is not recorded).  The distribution registry accepts
a token up to 60 s after its ``exp``; :meth:`TokenServer.expire_next`
makes the next tokens truly expired (while the JSON still announces
``expires_in``), so that the registry answers 401 ``invalid_token``.
"""

import base64
import binascii
import dataclasses
import datetime
import http.server
import json
import os
import shutil
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509
from cryptography.x509.oid import NameOID
import jwt

from ironic_images.tests.functional.servers import base

#: Seconds the distribution registry tolerates after ``exp``.
REGISTRY_LEEWAY = 60


@dataclasses.dataclass(frozen=True)
class TokenRequest(object):
    """A request the token server got (never holds a password).

    ``path`` is as sent, with the query string; ``service`` and
    ``scopes`` (a tuple) come from the query; ``basic_auth`` tells whether
    an ``Authorization: Basic`` header came, ``user`` is the user name in
    it (or None); ``status`` is the answer's; ``jti`` and ``sub`` identify
    the token issued (None if none was); ``access`` is its grant.
    """

    method: str
    path: str
    service: str
    scopes: tuple
    basic_auth: bool
    user: str
    status: int
    jti: str = None
    sub: str = None
    access: tuple = ()


def parse_scope(scope):
    """Split ``type:name:actions`` into (type, name, [actions]).

    The name may hold a colon (``host:5000/name``).  Returns None for a
    malformed scope.
    """
    kind, sep, rest = scope.partition(':')
    name, sep2, actions = rest.rpartition(':')
    if not (sep and sep2 and kind and name):
        return None
    return kind, name, [a for a in actions.split(',') if a]


class _Handler(http.server.BaseHTTPRequestHandler):

    protocol_version = 'HTTP/1.1'
    server_version = 'ironic-images-token-server/1.0'

    def log_message(self, fmt, *args):
        pass  # requests are recorded by TokenServer

    def do_GET(self):
        self.server.token_server.handle(self)

    def do_POST(self):
        # Docker's OAuth2 form (POST /token): not supported, as by many
        # token servers; clients then fall back to GET.
        length = int(self.headers.get('Content-Length') or 0)
        if length:
            self.rfile.read(length)
        self.server.token_server.reply(self, 404, {'errors': [
            {'code': 'UNSUPPORTED', 'message': 'use GET'}]})


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    ssl_context = None

    def finish_request(self, request, client_address):
        # In the request's own thread: a slow TLS handshake does not
        # block the other clients, nor stop().
        request.settimeout(30)
        if self.ssl_context is None:
            return super(_HTTPServer, self).finish_request(request,
                                                           client_address)
        # The wrapped socket takes over the connection: close it here.
        with self.ssl_context.wrap_socket(request, server_side=True) as conn:
            super(_HTTPServer, self).finish_request(conn, client_address)

    def handle_error(self, request, client_address):
        pass  # a client that goes away, a failed TLS handshake


class TokenServer(object):
    """A threaded token server on 127.0.0.1; see the module docstring.

    The port is bound, the key and certificate are made by the
    constructor, so :attr:`realm` and :attr:`cert_path` can go in a
    registry's configuration before :meth:`start`.

    :param service: the service name the registry announces (``aud``).
    :param issuer: ``iss`` of the tokens.
    :param users: a dict of user name to password accepted as Basic
        credentials; wrong credentials get 401.
    :param anonymous: whether a request without credentials gets a token
        (with ``sub`` empty); by default, True only when ``users`` is
        empty.
    :param expires_in: the token lifetime in seconds (``exp - iat`` and
        the announced ``expires_in``).
    :param actions: the actions a token asked over HTTP may grant.
    :param repositories: if given, the only repository names granted.
    :param tls: a :data:`~.tls.CAFiles`: serve https with its
        certificate.
    :param workdir: where the key and certificate go; by default a
        temporary directory removed by :meth:`stop`.

    Attributes: ``url``, ``realm`` (``url + '/token'``), ``port``,
    ``service``, ``issuer``, ``cert_path``, ``key_path``, ``cert_der``,
    ``users``, ``anonymous``, ``expires_in``, ``actions``,
    ``repositories``, ``requests`` and ``request_count``.  ``expires_in``,
    ``actions``, ``repositories`` and ``anonymous`` may be changed while
    it runs.
    """

    def __init__(self, service='test-registry', issuer='test-issuer',
                 users=None, anonymous=None, expires_in=300,
                 actions=('pull',), repositories=None, tls=None,
                 workdir=None):
        self.service = service
        self.issuer = issuer
        self.users = dict(users or {})
        self.anonymous = not self.users if anonymous is None else anonymous
        self.expires_in = expires_in
        self.actions = tuple(actions)
        self.repositories = (None if repositories is None
                             else set(repositories))
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(
            prefix='ironic-images-tokens-')
        self.cert_path = os.path.join(self.workdir, 'token.crt')
        self.key_path = os.path.join(self.workdir, 'token.key')
        self._lock = threading.Lock()
        self._requests = []
        self._expire_next = 0
        self._thread = None
        self._make_key()
        self._httpd = _HTTPServer((base.LOCALHOST, 0), _Handler)
        self._httpd.token_server = self
        scheme = 'http'
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert, tls.key)
            self._httpd.ssl_context = context
            scheme = 'https'
        self.port = self._httpd.server_address[1]
        self.url = '%s://%s:%d' % (scheme, base.LOCALHOST, self.port)
        self.realm = self.url + '/token'

    def _make_key(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                             'ironic-images test tokens')])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(name).issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=3))
                .add_extension(x509.BasicConstraints(ca=True,
                                                     path_length=None),
                               critical=True)
                .sign(key, hashes.SHA256()))
        self._key = key
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        with open(self.cert_path, 'wb') as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(self.key_path, 'wb') as f:
            f.write(key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))

    # Tokens

    def make_token(self, scopes=(), sub='test-admin', expires_in=None,
                   expired=False, access=None):
        """Mint a signed token without a request (it is not recorded).

        :param scopes: scope strings (``repository:NAME:pull,push``); every
            action asked is granted.
        :param sub: the subject.
        :param expires_in: lifetime in seconds; default ``expires_in``.
        :param expired: make it expired beyond the registry's leeway.
        :param access: a list of ``access`` claim dicts, instead of
            ``scopes``.
        :returns: the JWT, a str.
        """
        if access is None:
            access = self._access(scopes, granted=None)
        return self._encode(sub, access, expires_in, expired)[0]

    def _access(self, scopes, granted):
        access = []
        for scope in scopes:
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            kind, name, actions = parsed
            if granted is not None:
                allowed = (self.repositories is None
                           or name in self.repositories)
                actions = [a for a in actions
                           if allowed and a in granted]
            access.append({'type': kind, 'name': name, 'actions': actions})
        return access

    def _encode(self, sub, access, expires_in=None, expired=False):
        if expires_in is None:
            expires_in = self.expires_in
        now = int(time.time())
        issued = now
        if expired:
            issued = now - expires_in - 2 * REGISTRY_LEEWAY - 60
        jti = uuid.uuid4().hex
        claims = {'iss': self.issuer, 'aud': self.service, 'sub': sub,
                  'iat': issued, 'nbf': issued - 1,
                  'exp': issued + expires_in, 'jti': jti,
                  'access': access}
        headers = {'x5c': [base64.b64encode(self.cert_der).decode()]}
        token = jwt.encode(claims, self._key, algorithm='RS256',
                           headers=headers)
        return token, jti, now

    def expire_next(self, count=1):
        """Make the next ``count`` tokens served over HTTP expired.

        Their JSON still announces ``expires_in``: a client caches them,
        and the registry answers 401 ``error="invalid_token"``.
        """
        with self._lock:
            self._expire_next = count

    # Requests

    @property
    def requests(self):
        """A copy of the list of :class:`TokenRequest`, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self):
        """The number of requests received."""
        with self._lock:
            return len(self._requests)

    @property
    def tokens_issued(self):
        """The number of tokens issued over HTTP."""
        return len([r for r in self.requests if r.jti])

    def clear_requests(self):
        """Forget the recorded requests."""
        with self._lock:
            del self._requests[:]

    def _credentials(self, handler):
        """Return (basic presented, user, password or None)."""
        value = handler.headers.get('Authorization') or ''
        scheme, _, param = value.partition(' ')
        if scheme.lower() != 'basic':
            return False, None, None
        try:
            decoded = base64.b64decode(param.strip(), validate=True)
            user, sep, password = decoded.decode('utf-8').partition(':')
        except (binascii.Error, UnicodeDecodeError):
            return True, None, None
        if not sep:
            return True, user, None
        return True, user, password

    def handle(self, handler):
        """Answer one GET (called by the request handler)."""
        split = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(split.query)
        service = (query.get('service') or [None])[0]
        scopes = tuple(s for value in query.get('scope', ())
                       for s in value.split(' ') if s)
        basic, user, password = self._credentials(handler)
        record = dict(method='GET', path=handler.path, service=service,
                      scopes=scopes, basic_auth=basic, user=user)
        status, body = self._answer(split.path, service, scopes, basic,
                                    user, password, record)
        record['status'] = status
        with self._lock:
            self._requests.append(TokenRequest(**record))
        headers = {}
        if status == 401:
            headers['WWW-Authenticate'] = 'Basic realm="test-token-server"'
        self.reply(handler, status, body, headers)

    def _answer(self, path, service, scopes, basic, user, password,
                record):
        if path != '/token':
            return 404, {'errors': [{'code': 'NOT_FOUND',
                                     'message': 'no such path'}]}
        if service != self.service:
            return 400, {'errors': [{
                'code': 'INVALID_SERVICE',
                'message': 'unknown service %r' % service}]}
        if basic:
            if user is None or self.users.get(user) != password:
                return 401, {'errors': [{'code': 'UNAUTHORIZED',
                                         'message': 'bad credentials'}]}
        elif not self.anonymous:
            return 401, {'errors': [{'code': 'UNAUTHORIZED',
                                     'message': 'credentials required'}]}
        sub = user if basic else ''
        access = self._access(scopes, granted=self.actions)
        with self._lock:
            expired = self._expire_next > 0
            if expired:
                self._expire_next -= 1
        token, jti, now = self._encode(sub, access, expired=expired)
        record.update(jti=jti, sub=sub, access=tuple(
            (a['type'], a['name'], tuple(a['actions'])) for a in access))
        issued_at = datetime.datetime.fromtimestamp(
            now, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        return 200, {'token': token, 'access_token': token,
                     'expires_in': self.expires_in, 'issued_at': issued_at}

    @staticmethod
    def reply(handler, status, body, headers=None):
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header('Content-Type', 'application/json')
        handler.send_header('Content-Length', str(len(data)))
        handler.send_header('Cache-Control', 'no-store')
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    # Life cycle

    def start(self):
        """Serve in a daemon thread.

        :returns: self.
        """
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={'poll_interval': 0.05},
            name='TokenServer-%d' % self.port, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving and remove ``workdir`` if it was made here.

        Safe to call more than once.
        """
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(10)
            self._thread = None
        self._httpd.server_close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


class TokenServerFixture(base.ServerFixture):
    """Run a :class:`TokenServer` during a test.

    Takes the arguments of :class:`TokenServer`; the server is in
    ``server``; ``url``, ``realm``, ``cert_path``, ``requests``,
    ``make_token()``... can be used on the fixture directly.
    """

    server_class = TokenServer
