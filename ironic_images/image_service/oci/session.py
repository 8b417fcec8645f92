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

"""One client's conversation with OCI registries: transport and auth.

Every request of
:class:`~ironic_images.image_service.oci.client.OciClient` goes through a
:class:`RegistrySession`: to the mirrors of the registry first
([oci]registry_mirrors) and to the registry last, over HTTPS (plain HTTP
only where [oci]permit_fallback_to_http_transport allows it), answering
the registry's 401 challenges (Basic, or a Bearer token from its realm,
cached and renewed once) and following a blob's redirects with the
``Authorization`` header only where it may go: the host that answered, or
a host of [oci]secure_cdn_registries. A mirror that cannot be reached is
left at once for the next host, without retries.
"""

import json
import urllib.parse

from oslo_log import log as logging

from ironic_images._i18n import _
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.image_service.oci import auth as oci_auth
from ironic_images.transfer import bodies
from ironic_images.transfer import http_client

LOG = logging.getLogger(__name__)

_REDIRECTS = (301, 302, 303, 307, 308)
# json raises RecursionError, not ValueError, for deeply nested input.
_BAD_JSON = (ValueError, RecursionError)
_MAX_ERROR_TEXT = 300
_DEFAULT_PORTS = {'https': 443, 'http': 80}


class RegistrySession:
    """Requests to OCI registries, with their mirrors and auth dance.

    :param verify: TLS verification: True, False or a CA bundle path.
    """

    def __init__(self, verify):
        self.session = http_client.new_session()
        self.verify = verify
        self._credentials = {}
        self._authorization = {}
        self._tokens = oci_auth.TokenCache()
        self._schemes = {}

    def set_credentials(self, host, credentials):
        """Use ``credentials`` for ``host`` from now on.

        :param host: ``host[:port]`` of a registry.
        :param credentials:
            :class:`ironic_images.image_service.oci.auth.Credentials`, or
            None for anonymous access.
        """
        self._credentials[host] = credentials
        self._authorization = {key: value for key, value
                               in self._authorization.items()
                               if key[0] != host}

    def authorization(self, host, repository):
        """The ``Authorization`` value last sent for a repository, or None.

        :param host: ``host[:port]`` of the registry.
        :param repository: the repository's name.
        """
        return self._authorization.get((host, repository))

    def scheme(self, host):
        """``'http'`` for a host found to speak only plain HTTP; else https.

        :param host: ``host[:port]`` of a registry.
        """
        return self._schemes.get(host, 'https')

    def _credentials_for(self, host):
        if host not in self._credentials:
            self._credentials[host] = oci_auth.credentials_from_config(host)
        return self._credentials[host]

    def _answer_challenge(self, host, repository, response, image_href,
                          renew=False):
        """Work out the Authorization to send after a 401; None if none."""
        scheme, params = oci_auth.parse_challenge(
            response.headers.get('Www-Authenticate'))
        credentials = self._credentials_for(host)
        if scheme == 'basic':
            return credentials.basic if credentials else None
        if scheme != 'bearer':
            return None
        if credentials and credentials.token:
            return 'Bearer ' + credentials.token
        realm = params.get('realm')
        if not realm:
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('the registry asked for a token without a realm'))
        scope = 'repository:%s:pull' % repository
        key = (realm, params.get('service'), scope)
        if renew:
            self._tokens.forget(key)
        token = self._tokens.get(key)
        if token is None:
            token = self._fetch_token(realm, params.get('service'), scope,
                                      credentials, image_href, key)
        return 'Bearer ' + token

    def _fetch_token(self, realm, service, scope, credentials, image_href,
                     key):
        query = {'scope': scope}
        if service:
            query['service'] = service
        headers = {}
        if credentials and credentials.basic:
            headers['Authorization'] = credentials.basic
        response = http_client.request(
            self.session, 'GET', realm, image_href=image_href,
            params=query, headers=headers, verify=self.verify,
            timeout=http_client.timeout(), stream=True,
            error_class=exception.ImageServiceAuthenticationRequired)
        if response.status_code != 200:
            response.close()
            raise exception.ImageServiceAuthenticationRequired(
                image_href=image_href,
                reason=(_('the token service refused the credentials '
                          '(HTTP %s)') if response.status_code in (401, 403)
                        else _('the token service answered HTTP %s'))
                % response.status_code)
        body = parse_json(
            bodies.read_capped(response, bodies.TOKEN_RESPONSE, image_href,
                               _('token response')),
            image_href, _('token response'))
        token = (body.get('token') or body.get('access_token')
                 if isinstance(body, dict) else None)
        if not isinstance(token, str) or not token.strip():
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('the token response has no token'))
        self._tokens.put(key, token, oci_auth.token_lifetime(body))
        return token

    def _send(self, host, path, image_href, **kwargs):
        """One request to a host, over HTTPS or, if allowed, plain HTTP."""
        scheme = self._schemes.get(host)
        if scheme is None and CONF.oci.permit_fallback_to_http_transport:
            try:
                response = self._send_to('https', host, path, image_href,
                                         retries=0, **kwargs)
            except _Unreachable as error:
                LOG.warning('Registry %(host)s unreachable over HTTPS '
                            '(%(error)s); using plain HTTP as '
                            '[oci]permit_fallback_to_http_transport allows',
                            {'host': host, 'error': error})
                self._schemes[host] = 'http'
            else:
                self._schemes[host] = 'https'
                return response
        return self._send_to(self._schemes.get(host, 'https'), host, path,
                             image_href, **kwargs)

    def _send_to(self, scheme, host, path, image_href, retries=None,
                 **kwargs):
        url = '%s://%s%s' % (scheme, host, path)
        # A certificate that fails verification is an attack or a
        # misconfiguration, never a reason to fall back to plain HTTP.
        return http_client.request(
            self.session, kwargs.pop('method', 'GET'), url,
            image_href=image_href, retries=retries, error_class=_Unreachable,
            certificate_error_class=exception.ImageDownloadFailed,
            verify=self.verify, timeout=http_client.timeout(), **kwargs)

    def _request_host(self, host, ref, path, image_href, headers=None,
                      **kwargs):
        """A request with the registry's auth dance (401, token, renew)."""
        auth_key = (host, ref.repository)
        renewed = False
        for attempt in range(3):
            sent_auth = self._authorization.get(auth_key)
            request_headers = dict(headers or {})
            if sent_auth:
                request_headers['Authorization'] = sent_auth
            response = self._send(host, path, image_href,
                                  headers=request_headers, **kwargs)
            if response.status_code != 401 or attempt == 2:
                return response
            invalid_token = 'invalid_token' in response.headers.get(
                'Www-Authenticate', '')
            # Credentials refused, or a token already renewed once: final.
            if sent_auth and (renewed or not invalid_token):
                return response
            renewed = renewed or invalid_token
            new_auth = self._answer_challenge(host, ref.repository,
                                              response, image_href,
                                              renew=invalid_token)
            if new_auth is None or new_auth == sent_auth:
                return response
            response.close()
            self._authorization[auth_key] = new_auth
        return response

    def request(self, ref, path, image_href, **kwargs):
        """A request to the mirrors of a registry, then to the registry.

        :param ref: the
            :class:`~ironic_images.image_service.oci.reference.OciReference`
            of the image.
        :param path: the path of the request, ``/v2/...``.
        :param image_href: the image, for messages.
        :param kwargs: passed to ``requests``: headers, stream...
        :returns: the ``requests.Response`` of the first mirror that
            answers below 400, else the registry's answer. A mirror that
            cannot be reached (refused, unknown name, no connection within
            [DEFAULT]webserver_connection_timeout) is asked once only.
        :raises: TemporaryFailure when no host can be reached,
            ImageServiceAuthenticationRequired, ImageHostRateLimitFailure.
        """
        return self._request(ref, path, image_href, **kwargs)[1]

    def _request(self, ref, path, image_href, **kwargs):
        """:meth:`request`; returns the host that answered too."""
        hosts = _mirrors(ref.host)
        for host in hosts:
            last = host == hosts[-1]
            # Another host can serve: a dead mirror is not worth retries.
            options = kwargs if last else dict(kwargs,
                                               retry_unreachable=False)
            try:
                response = self._request_host(host, ref, path, image_href,
                                              **options)
            except (exception.TemporaryFailure,
                    exception.ImageServiceAuthenticationRequired) as error:
                if last:
                    raise
                LOG.warning('Mirror %(mirror)s of %(host)s failed '
                            '(%(error)s); trying the next',
                            {'mirror': host, 'host': ref.host,
                             'error': error})
                continue
            if last or response.status_code < 400:
                return host, response
            LOG.info('Mirror %(mirror)s of %(host)s answered HTTP '
                     '%(status)s for %(path)s; trying the next',
                     {'mirror': host, 'host': ref.host, 'path': path,
                      'status': response.status_code})
            response.close()

    def open_blob(self, ref, digest, image_href, headers=None):
        """GET a blob, following redirects.

        A redirect carries the ``Authorization`` header sent to the host
        that answered (a mirror's own, never the registry's) to that same
        host, and to another host only when the redirect's target is in
        [oci]secure_cdn_registries (as Ironic reads it: the content
        delivery networks a registry sends its blobs from).

        :param ref: the image's
            :class:`~ironic_images.image_service.oci.reference.OciReference`.
        :param digest: the blob's digest.
        :param image_href: the blob's href, for messages.
        :param headers: more request headers (``Range``), or None.
        :returns: the streamed ``requests.Response``, not yet checked.
        :raises: ImageDownloadFailed after [http]max_redirects redirects;
            what :meth:`request` raises.
        """
        path = '/v2/%s/blobs/%s' % (ref.repository, digest)
        # A mirror that redirects does it with its own token and trust:
        # the registry's token is for the registry only.
        host, response = self._request(ref, path, image_href,
                                       headers=headers, stream=True,
                                       allow_redirects=False)
        origin = urllib.parse.urlsplit(response.url).netloc
        for _redirect in range(CONF.http.max_redirects):
            if response.status_code not in _REDIRECTS:
                return response
            target = urllib.parse.urljoin(response.url,
                                          response.headers.get('Location'))
            response.close()
            redirect_headers = dict(headers or {})
            auth = self.authorization(host, ref.repository)
            same_host = urllib.parse.urlsplit(target).netloc == origin
            if auth and (same_host or is_secure_cdn_target(target)):
                redirect_headers['Authorization'] = auth
            LOG.debug('Blob %(digest)s of %(href)s redirected to '
                      '%(target)s', {'digest': digest,
                                     'href': masking.mask_href(image_href),
                                     'target': masking.mask_href(target)})
            response = http_client.request(
                self.session, 'GET', target, image_href=image_href,
                headers=redirect_headers, stream=True, allow_redirects=False,
                verify=self.verify, timeout=http_client.timeout())
        if response.status_code not in _REDIRECTS:
            return response
        response.close()
        raise exception.ImageDownloadFailed(
            image_href=image_href,
            reason=_('more than %d redirects for a blob')
            % CONF.http.max_redirects)


def check_status(response, image_href, what):
    """Raise the exception a registry's answer other than 200 means.

    :param response: a ``requests.Response`` (closed unless 200).
    :param image_href: the image, for messages.
    :param what: what was asked for (``manifest``, ``blob``...).
    :raises: ImageServiceAuthenticationRequired (401), ImageNotFound
        (403, 404), ImageDownloadFailed (anything else).
    """
    status = response.status_code
    if status == 200:
        return
    code, message = registry_error(response)
    detail = ': %s %s' % (code, message) if code or message else ''
    reason = _('HTTP %(status)s for the %(what)s%(detail)s') % {
        'status': status, 'what': what, 'detail': detail}
    if status == 401:
        raise exception.ImageServiceAuthenticationRequired(
            image_href=image_href, reason=reason)
    if status in (403, 404):
        raise exception.ImageNotFound(image_href=image_href,
                                      reason=reason)
    raise exception.ImageDownloadFailed(image_href=image_href,
                                        reason=reason)


def parse_json(data, image_href, what):
    """Parse a registry's JSON answer.

    :param data: the bytes received.
    :param image_href: the image, for messages.
    :param what: what the bytes are (``tag list``, ``manifest``...).
    :returns: the parsed value.
    :raises: ImageRefValidationFailed when it is not JSON.
    """
    try:
        return json.loads(data)
    except _BAD_JSON as error:
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('the %(what)s is not valid JSON: %(error)s') % {
                'what': what, 'error': error})


def _mirrors(host):
    """Hosts to try for a registry: its mirrors first, then itself."""
    hosts = []
    for item in CONF.oci.registry_mirrors:
        origin, sep, mirror = item.partition('=')
        if sep and origin.strip().lower() == host and mirror.strip():
            hosts.append(mirror.strip().lower())
    return hosts + [host]


class _Unreachable(exception.TemporaryFailure):
    """The registry could not be reached at all (no HTTP answer)."""


def is_secure_cdn_target(url):
    """Whether a redirect may carry the Authorization header to a URL.

    [oci]secure_cdn_registries names the hosts a registry redirects its
    blob requests to (content delivery networks that want the registry's
    token). An entry matches the host exactly or as a domain:
    ``example.com`` and ``.example.com`` match ``cdn.example.com``, never
    ``evilexample.com`` nor ``example.com.evil.net``; an entry with a port
    (``host:port``) matches that port only.

    :param url: the redirect's target.
    :returns: True when its host is listed.
    """
    try:
        target = urllib.parse.urlsplit(url)
        hostname, port = target.hostname or '', target.port
    except ValueError:
        return False
    port = port or _DEFAULT_PORTS.get(target.scheme)
    for entry in CONF.oci.secure_cdn_registries:
        try:
            listed = urllib.parse.urlsplit('//' + entry.strip().lower())
            domain = (listed.hostname or '').lstrip('.')
            listed_port = listed.port
        except ValueError:
            continue
        if not domain or listed_port not in (None, port):
            continue
        if hostname == domain or hostname.endswith('.' + domain):
            return True
    return False


def registry_error(response):
    """The first error code and message of a registry's error body.

    At most :data:`ironic_images.transfer.bodies.ERROR_BODY` bytes are
    read: an error body is small, and a hostile registry must not make us
    read a large one. The response is closed.

    :param response: an error ``requests.Response``, streamed.
    :returns: ``(code, message)``, each ``''`` when the body does not
        say (not JSON, too large, unreadable).
    """
    try:
        body = bodies.read_capped(response, bodies.ERROR_BODY, response.url,
                                  'error body')
        error = json.loads(body)['errors'][0]
        code, message = error.get('code', ''), error.get('message', '')
    except (exception.IronicImagesException, ValueError, RecursionError,
            KeyError, IndexError, TypeError, AttributeError):
        return '', ''
    # One line, and short: it goes into an exception message.
    return tuple(' '.join(value.split())[:_MAX_ERROR_TEXT]
                 if isinstance(value, str) else ''
                 for value in (code, message))
