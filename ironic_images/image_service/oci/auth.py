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

"""Credentials and tokens for OCI registries.

Credentials come, in order, from the caller (``set_image_auth``), from a
node's ``image_pull_secret``, then from ``[oci]authentication_config``.
A pull secret may be ``user:password``, a docker ``auth`` value
(base64 of ``user:password``) or a bare registry token.
"""

import base64
import binascii
import collections
import json
import re
import time
import urllib.parse

from oslo_log import log as logging

from ironic_images._i18n import _
from ironic_images.conf import CONF
from ironic_images import exception

LOG = logging.getLogger(__name__)

# Tokens are renewed this many seconds before they say they expire.
_EXPIRY_MARGIN = 10
# The distribution spec's default lifetime of a token that does not say.
_DEFAULT_TOKEN_LIFETIME = 60
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*'
                              r'("(?:[^"\\]|\\.)*"|[^,\s]*)')


class Credentials(collections.namedtuple(
        'Credentials', ['username', 'password', 'token'])):
    """What to present to a registry: a user and password, or a token."""

    __slots__ = ()

    def __repr__(self):
        # Never print the secret parts.
        return 'Credentials(username=%r, password=%s, token=%s)' % (
            self.username, '***' if self.password else None,
            '***' if self.token else None)

    @property
    def basic(self):
        """The ``Authorization`` value for Basic auth, or None."""
        if self.username is None or self.password is None:
            return None
        pair = '%s:%s' % (self.username, self.password)
        return 'Basic ' + base64.b64encode(pair.encode()).decode()


def decode_secret(secret):
    """Decode a pull secret.

    :param secret: ``user:password``, base64 of it, or a bare token.
    :returns: :class:`Credentials`, or None for an empty secret.
    """
    secret = (secret or '').strip()
    if not secret:
        return None
    try:
        decoded = base64.b64decode(secret, validate=True).decode('utf-8')
    except (binascii.Error, ValueError):
        decoded = None
    if decoded and ':' in decoded:
        username, _sep, password = decoded.partition(':')
        return Credentials(username, password, None)
    if ':' in secret:
        username, _sep, password = secret.partition(':')
        return Credentials(username, password, None)
    return Credentials(None, None, secret)


def credentials_from_auth_data(auth_data):
    """Turn what a caller gives ``set_image_auth`` into credentials.

    :param auth_data: a dict with ``username``/``password`` (the shape
        :func:`ironic_images.image_service.get_image_service_auth_override`
        returns; an empty user name with a password is a pull secret), or
        with ``token``; or None.
    :returns: :class:`Credentials` or None.
    """
    if not auth_data:
        return None
    if auth_data.get('token'):
        return Credentials(None, None, auth_data['token'])
    username = auth_data.get('username')
    password = auth_data.get('password')
    if not username and password:
        return decode_secret(password)
    if username and password:
        return Credentials(username, password, None)
    return None


def credentials_from_config(host):
    """Credentials for a registry host from [oci]authentication_config.

    :param host: ``host[:port]`` of the registry.
    :returns: :class:`Credentials` or None.
    :raises: ImageRefValidationFailed when the file cannot be read or is
        not a docker config.json.
    """
    path = CONF.oci.authentication_config
    if not path:
        return None
    return credentials_from_auth_file(path, host,
                                      '[oci]authentication_config')


def credentials_from_auth_file(path, host, what=None):
    """Credentials for a registry host from a docker ``config.json``.

    The file is docker's ``~/.docker/config.json`` or podman's and
    skopeo's ``auth.json``: ``{"auths": {"HOST": {"auth": "BASE64(user:
    password)"}}}``, or ``username`` and ``password``, or an
    ``identitytoken`` or ``registrytoken``, per registry. Credential
    helpers (``credsStore``, ``credHelpers``) are not run.

    :param path: the file.
    :param host: ``host[:port]`` of the registry.
    :param what: how to name the file in a message (an option, a
        command-line flag); default: its path alone.
    :returns: :class:`Credentials` or None when it has none for ``host``.
    :raises: ImageRefValidationFailed when the file cannot be read or is
        not a docker config.json.
    """
    try:
        with open(path, 'rb') as config_file:
            auths = json.load(config_file).get('auths', {})
        entries = {_config_host(key): value for key, value in auths.items()}
        entry = entries.get(host)
        if entry is None:
            return None
        if entry.get('auth'):
            return decode_secret(entry['auth'])
        if entry.get('username') and entry.get('password'):
            return Credentials(entry['username'], entry['password'], None)
        if entry.get('registrytoken') or entry.get('identitytoken'):
            return Credentials(None, None, entry.get('registrytoken')
                               or entry.get('identitytoken'))
    except (OSError, ValueError, AttributeError, TypeError) as error:
        raise exception.ImageRefValidationFailed(
            image_href='oci://%s' % host,
            reason=_('cannot use %(what)s %(path)s: %(error)s') % {
                'what': what or _('the credentials file'), 'path': path,
                'error': error})
    return None


def _config_host(key):
    """``https://host:port/v1/`` and ``host:port`` both name host:port."""
    if '://' in key:
        return urllib.parse.urlsplit(key).netloc
    return key.split('/', 1)[0]


def parse_challenge(header):
    """Parse a ``Www-Authenticate`` header.

    :param header: the header value, or None.
    :returns: ``(scheme, params)``: the lower-case scheme (``basic``,
        ``bearer``) and a dict of its parameters; ``(None, {})`` when
        absent or malformed.
    """
    if not header:
        return None, {}
    scheme, _sep, rest = header.strip().partition(' ')
    params = {}
    for key, value in _CHALLENGE_PARAM.findall(rest):
        if value.startswith('"'):
            value = re.sub(r'\\(.)', r'\1', value[1:-1])
        params[key.lower()] = value
    return scheme.lower() or None, params


class TokenCache:
    """Bearer tokens per (realm, service, scope), kept until they expire."""

    def __init__(self):
        self._tokens = {}

    def get(self, key):
        """A valid token for ``key``, or None."""
        token, expires = self._tokens.get(key, (None, 0))
        if token and time.monotonic() < expires:
            return token
        return None

    def put(self, key, token, expires_in):
        """Keep a token for ``expires_in`` seconds (less a margin)."""
        lifetime = max(expires_in - _EXPIRY_MARGIN, 1)
        self._tokens[key] = (token, time.monotonic() + lifetime)

    def forget(self, key):
        """Drop the token of ``key`` (the registry refused it)."""
        self._tokens.pop(key, None)


def token_lifetime(body):
    """The lifetime in seconds a token response gives, or the default."""
    try:
        value = int(body.get('expires_in', _DEFAULT_TOKEN_LIFETIME))
    except (TypeError, ValueError):
        value = _DEFAULT_TOKEN_LIFETIME
    return value if value > 0 else _DEFAULT_TOKEN_LIFETIME
