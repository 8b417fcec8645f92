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

"""The image a person names on the command line, and how to reach it.

- A path of this host (a file that exists, or anything that is neither a
  URL nor a Glance image ID) is the person's own: it is read as a
  ``file://`` href is, through the same pipeline, outside
  ``[file]allowed_paths``
  (:func:`ironic_images.image_service.file.trusted_local_file`), which
  protects services from their users' hrefs.
- Credentials: ``--creds`` for a registry or a web server; for a
  registry, ``--authfile`` or the files skopeo, podman and docker read.
- ``--ca-file`` and ``--insecure`` for every server; ``--os-cloud`` (or
  ``$OS_CLOUD``) for Glance (:mod:`ironic_images.cmd.clouds`).
"""

import contextlib
import os
import typing

from oslo_utils import uuidutils

from ironic_images.cmd import clouds
from ironic_images.cmd import parser
from ironic_images.conf import CONF
from ironic_images import image_service
from ironic_images.image_service import file as file_service
from ironic_images.image_service.oci import auth as oci_auth
from ironic_images.image_service.oci import reference as oci_reference


class Source(typing.NamedTuple):
    """An image named on the command line.

    :ivar href: what to hand the library.
    :ivar name: what the person typed, for messages.
    :ivar auth_data: credentials for the driver, or None.
    :ivar local: the path, for a local file; else None.
    """

    href: str
    name: str
    auth_data: typing.Optional[dict] = None
    local: typing.Optional[str] = None


class Overrides:
    """Options set for one run of the command, and unset after it.

    :param conf: the ``ConfigOpts``.
    """

    def __init__(self, conf):
        self._conf = conf
        self._set = []
        self._registered = []

    def __call__(self, name, value, group=None):
        """Set an option for this run.

        :param name: the option.
        :param value: its value.
        :param group: its group, or None for ``[DEFAULT]``.
        """
        self._conf.set_override(name, value, group=group)
        self._set.append((name, group))

    def registered(self, opts, group):
        """Remember options registered for this run only.

        :param opts: the options registered.
        :param group: their group.
        """
        self._registered.append((opts, group))

    def clear(self):
        """Unset every option set."""
        for name, group in reversed(self._set):
            self._conf.clear_override(name, group=group)
        self._set = []

    def unregister(self):
        """Unregister what :meth:`registered` named.

        Call it once the configuration is cleared: oslo.config refuses to
        unregister an option while arguments are parsed.
        """
        for opts, group in reversed(self._registered):
            self._conf.unregister_opts(opts, group=group)
        self._registered = []


def local_path(text):
    """The path an image argument names, or None for an href.

    :param text: what was typed.
    :returns: the path, for an existing file or anything that is neither
        a URL (``scheme://``) nor a Glance image ID; else None.
    """
    if '://' in text:
        return None
    if os.path.lexists(text):
        return text
    if uuidutils.is_uuid_like(text.strip()):
        return None
    return text


@contextlib.contextmanager
def open_image(text, args, overrides):
    """Name an image to the library, with its credentials.

    :param text: the image as typed: a path, a URL or a Glance image ID.
    :param args: the parsed command line.
    :param overrides: the :class:`Overrides` of this run.
    :returns: a context manager yielding a :class:`Source`; a local
        file is readable inside it only.
    :raises: UsageError for a missing local file or credentials that do
        not apply; ImageRefValidationFailed for an unusable --authfile.
    """
    path = local_path(text)
    if path is not None:
        if not os.path.exists(path):
            raise parser.UsageError('%s: no such file' % text)
        if args.creds:
            raise parser.UsageError('--creds is for images on servers; '
                                    '%s is a local file' % text)
        with file_service.trusted_local_file(path) as href:
            yield Source(href, text, None, path)
        return
    scheme = image_service.image_scheme(text)
    auth_data = None
    if scheme == image_service.OCI_SCHEME:
        auth_data = _registry_credentials(text, args)
    elif scheme in ('http', 'https'):
        if args.creds:
            user, password = _creds(args.creds)
            overrides('auth_strategy', 'http_basic', 'http')
            overrides('user', user, 'http')
            overrides('password', password, 'http')
    elif args.creds:
        raise parser.UsageError(
            '--creds is for oci:// and http(s):// images; Glance takes '
            'the credentials of --os-cloud or of the [glance] options')
    if scheme == image_service.GLANCE_SCHEME and args.os_cloud:
        clouds.use_cloud(args.os_cloud, overrides,
                         keep_tls=bool(args.ca_file or args.insecure))
    yield Source(text, text, auth_data)


def _creds(value):
    user, sep, password = value.partition(':')
    if not (user and sep):
        raise parser.UsageError('--creds takes USER:PASSWORD')
    return user, password


def _registry_credentials(href, args):
    """The credentials for an oci:// href, as the driver takes them."""
    if args.creds:
        user, password = _creds(args.creds)
        return {'username': user, 'password': password}
    host = oci_reference.parse_reference(href).host
    for path, what in auth_files(args.authfile):
        found = oci_auth.credentials_from_auth_file(path, host, what)
        if found is not None:
            if found.token:
                return {'token': found.token}
            return {'username': found.username, 'password': found.password}
    return None


def auth_files(authfile, environ=None):
    """The registry credential files to read, in order.

    :param authfile: the ``--authfile`` value, or None.
    :param environ: the environment; default ``os.environ``.
    :returns: a list of ``(path, how to name it)``: ``--authfile`` alone
        when given; nothing when ``[oci]authentication_config`` is set
        (the driver reads it); else those of podman, skopeo and docker
        that exist.
    """
    if authfile:
        return [(authfile, '--authfile')]
    if CONF.oci.authentication_config:
        return []
    environ = os.environ if environ is None else environ
    home = os.path.expanduser('~')
    candidates = [environ.get('REGISTRY_AUTH_FILE')]
    if environ.get('XDG_RUNTIME_DIR'):
        candidates.append(os.path.join(environ['XDG_RUNTIME_DIR'],
                                       'containers', 'auth.json'))
    candidates.append(os.path.join(
        environ.get('XDG_CONFIG_HOME') or os.path.join(home, '.config'),
        'containers', 'auth.json'))
    candidates.append(os.path.join(
        environ.get('DOCKER_CONFIG') or os.path.join(home, '.docker'),
        'config.json'))
    return [(path, path) for path in candidates
            if path and os.path.isfile(path)]


def configure_tls(args, overrides):
    """Apply ``--ca-file`` and ``--insecure`` to every kind of server.

    :param args: the parsed command line.
    :param overrides: the :class:`Overrides` of this run.
    :raises: UsageError for a CA file that does not exist, or both.
    """
    if args.insecure and args.ca_file:
        raise parser.UsageError('--ca-file and --insecure exclude each '
                                'other')
    if args.insecure:
        overrides('webserver_verify_ca', 'False')
        overrides('verify_ca', 'False', 'oci')
        overrides('permit_fallback_to_http_transport', True, 'oci')
        overrides('insecure', True, 'glance')
    elif args.ca_file:
        if not os.path.isfile(args.ca_file):
            raise parser.UsageError('--ca-file %s: no such file'
                                    % args.ca_file)
        path = os.path.abspath(args.ca_file)
        overrides('webserver_verify_ca', path)
        overrides('verify_ca', path, 'oci')
        overrides('cafile', path, 'glance')
