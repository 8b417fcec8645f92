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

"""A client of the OCI distribution protocol: auth, tags, manifests, blobs.

URLs have the form ``oci://host[:port]/path/name[:tag|@sha256:HEX]``; no
tag means ``latest``. Registries are spoken to over HTTPS (plain HTTP only
when [oci]permit_fallback_to_http_transport allows it), mirrors of
[oci]registry_mirrors first and the origin last.
"""

import hashlib
import json
import time
import urllib.parse

from oslo_log import log as logging
from oslo_utils import units
import requests

from ironic_images._i18n import _
from ironic_images import checksum_utils
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images import file_writer
from ironic_images import http_client
from ironic_images import masking
from ironic_images import oci_auth
from ironic_images import oci_reference
from ironic_images import resumable
from ironic_images import transfer

LOG = logging.getLogger(__name__)

# Re-exported: part of this module's public API.
OciReference = oci_reference.OciReference
parse_reference = oci_reference.parse_reference

INDEX_TYPE = 'application/vnd.oci.image.index.v1+json'
MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'
DOCKER_LIST_TYPE = 'application/vnd.docker.distribution.manifest.list.v2+json'
DOCKER_MANIFEST_TYPE = 'application/vnd.docker.distribution.manifest.v2+json'
INDEX_TYPES = (INDEX_TYPE, DOCKER_LIST_TYPE)
MANIFEST_ACCEPT = ', '.join((INDEX_TYPE, MANIFEST_TYPE, DOCKER_LIST_TYPE,
                             DOCKER_MANIFEST_TYPE))
# Registries refuse larger manifests; anything larger is not one.
MAX_MANIFEST_SIZE = 4 * units.Mi
_REDIRECTS = (301, 302, 303, 307, 308)


def _mirrors(host):
    """Hosts to try for a registry: its mirrors first, then itself."""
    hosts = []
    for item in CONF.oci.registry_mirrors:
        origin, sep, mirror = item.partition('=')
        if sep and origin.strip().lower() == host and mirror.strip():
            hosts.append(mirror.strip().lower())
    return hosts + [host]


# json raises RecursionError, not ValueError, for deeply nested input.
_BAD_JSON = (ValueError, RecursionError)


def _json(response, image_href, what):
    try:
        return json.loads(response.content)
    except _BAD_JSON as error:
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('the %(what)s is not valid JSON: %(error)s') % {
                'what': what, 'error': error})


class OciClient:
    """A client of one or more OCI registries.

    :param verify: TLS verification (True, False or a CA bundle path);
        default [oci]verify_ca.
    """

    def __init__(self, verify=None):
        self.session = http_client.new_session()
        self.verify = (http_client.verify_setting(CONF.oci.verify_ca,
                                                  '[oci]verify_ca')
                       if verify is None else verify)
        self._credentials = {}
        self._authorization = {}
        self._tokens = oci_auth.TokenCache()
        self._schemes = {}

    # Authentication

    def authenticate(self, image_url, username=None, password=None,
                     token=None):
        """Set the credentials used for the registry of an image.

        Nothing is sent until a request needs it; the registry's challenge
        then says whether Basic or a Bearer token is wanted.

        :param image_url: an ``oci://`` URL of the registry.
        :param username: a user name, with ``password``.
        :param password: a password, or a pull secret when ``username``
            is empty (see :func:`ironic_images.oci_auth.decode_secret`).
        :param token: a registry token to present as Bearer.
        :raises: ImageRefValidationFailed for a malformed URL.
        """
        host = parse_reference(image_url).host
        if token:
            credentials = oci_auth.Credentials(None, None, token)
        else:
            credentials = oci_auth.credentials_from_auth_data(
                {'username': username, 'password': password})
        self._credentials[host] = credentials
        self._authorization = {key: value for key, value
                               in self._authorization.items()
                               if key[0] != host}

    def _credentials_for(self, host):
        if host not in self._credentials:
            self._credentials[host] = oci_auth.credentials_from_config(host)
        return self._credentials[host]

    def get_cached_auth(self, image_url):
        """The ``Authorization`` value last used for an image's repository.

        :param image_url: an ``oci://`` URL.
        :returns: e.g. ``Bearer TOKEN``, or None when none was needed.
        """
        ref = parse_reference(image_url)
        return self._authorization.get((ref.host, ref.repository))

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
            timeout=http_client.timeout(),
            error_class=exception.ImageServiceAuthenticationRequired)
        if response.status_code in (401, 403):
            raise exception.ImageServiceAuthenticationRequired(
                image_href=image_href,
                reason=_('the token service refused the credentials '
                         '(HTTP %s)') % response.status_code)
        if response.status_code != 200:
            raise exception.ImageServiceAuthenticationRequired(
                image_href=image_href,
                reason=_('the token service answered HTTP %s')
                % response.status_code)
        body = _json(response, image_href, _('token response'))
        token = (body.get('token') or body.get('access_token')
                 if isinstance(body, dict) else None)
        if not isinstance(token, str) or not token.strip():
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('the token response has no token'))
        self._tokens.put(key, token, oci_auth.token_lifetime(body))
        return token

    # Transport

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

    def _request(self, ref, path, image_href, **kwargs):
        """A request to the mirrors of a registry, then to the registry."""
        hosts = _mirrors(ref.host)
        for host in hosts:
            last = host == hosts[-1]
            try:
                response = self._request_host(host, ref, path, image_href,
                                              **kwargs)
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
                return response
            LOG.info('Mirror %(mirror)s of %(host)s answered HTTP '
                     '%(status)s for %(path)s; trying the next',
                     {'mirror': host, 'host': ref.host, 'path': path,
                      'status': response.status_code})
            response.close()

    def _check(self, response, image_href, what):
        status = response.status_code
        if status == 200:
            return
        detail = _registry_error(response)
        response.close()
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

    # Tags, indexes and manifests

    def get_tags(self, image_url):
        """List the tags of an image's repository, following pagination.

        :param image_url: an ``oci://`` URL.
        :returns: the list of tags.
        :raises: ImageNotFound, ImageServiceAuthenticationRequired,
            ImageRefValidationFailed for a malformed answer,
            TemporaryFailure.
        """
        ref = parse_reference(image_url)
        path = '/v2/%s/tags/list' % ref.repository
        tags = []
        for _page in range(_MAX_TAG_PAGES):
            response = self._request(ref, path, image_url)
            self._check(response, image_url, _('tag list'))
            body = _json(response, image_url, _('tag list'))
            page = body.get('tags') if isinstance(body, dict) else []
            if (not isinstance(body, dict) or (page is not None and (
                    not isinstance(page, list)
                    or not all(isinstance(tag, str) for tag in page)))):
                raise exception.ImageRefValidationFailed(
                    image_href=image_url,
                    reason=_('the tag list is not an object with a list of '
                             'tag names'))
            tags.extend(page or [])
            next_url = response.links.get('next', {}).get('url')
            if not next_url:
                break
            try:
                parts = urllib.parse.urlsplit(
                    urllib.parse.urljoin(response.url, next_url))
            except ValueError:
                raise exception.ImageRefValidationFailed(
                    image_href=image_url,
                    reason=_('the tag list links to a malformed next page'))
            path = parts.path + ('?' + parts.query if parts.query else '')
        return tags

    def _manifest(self, ref, image_href, accept=MANIFEST_ACCEPT):
        """The bytes, parsed body and digest of a manifest or index."""
        path = '/v2/%s/manifests/%s' % (ref.repository, ref.reference)
        retries = CONF.download.retries
        for attempt in range(retries + 1):
            response = self._request(ref, path, image_href,
                                     headers={'Accept': accept}, stream=True)
            if response.status_code == 404 and not ref.digest:
                response.close()
                raise exception.OciImageTagNotFound(
                    image_href=image_href, tag=ref.tag,
                    tags=', '.join(self._tags_quietly(ref)) or _('none'))
            self._check(response, image_href, _('manifest'))
            try:
                body = response.raw.read(MAX_MANIFEST_SIZE + 1,
                                         decode_content=True)
                break
            except resumable.DROPS as error:
                # urllib3 raises its own errors (IncompleteRead as
                # ProtocolError, ReadTimeoutError) from raw reads.
                reason = masking.mask_text('%s: %s' % (
                    type(error).__name__, error))
                if attempt == retries:
                    raise exception.ImageDownloadFailed(
                        image_href=image_href,
                        reason=_('reading the manifest: %s') % reason)
                LOG.warning('Reading the manifest of %(href)s failed '
                            '(%(reason)s); retrying',
                            {'href': masking.mask_href(image_href),
                             'reason': reason})
                time.sleep(http_client.backoff(attempt + 1))
            finally:
                response.close()
        if len(body) > MAX_MANIFEST_SIZE:
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('the manifest is larger than %d bytes')
                % MAX_MANIFEST_SIZE)
        if ref.digest:
            algorithm, _sep, value = ref.digest.partition(':')
            checksum_utils.Checksum(algorithm, value).verify(
                hashlib.new(algorithm, body).hexdigest(), image_href)
            digest = ref.digest
        else:
            digest = 'sha256:' + hashlib.sha256(body).hexdigest()
        try:
            manifest = json.loads(body)
        except _BAD_JSON as error:
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('the manifest is not valid JSON: %s') % error)
        if not isinstance(manifest, dict):
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('the manifest is not a JSON object'))
        manifest.setdefault('mediaType', response.headers.get(
            'Content-Type', '').split(';')[0].strip())
        return manifest, digest

    def _tags_quietly(self, ref):
        try:
            return self.get_tags(ref.url())
        except exception.IronicImagesException:
            return []

    def get_manifest(self, image_url, digest=None):
        """Fetch a manifest (or an index), verified against its digest.

        :param image_url: an ``oci://`` URL with a tag or digest.
        :param digest: a digest overriding the URL's reference.
        :returns: the manifest as a dict; its ``mediaType`` is filled in
            from Content-Type when the body does not carry it.
        :raises: ImageNotFound, OciImageTagNotFound, ImageChecksumError,
            ImageRefValidationFailed, ImageServiceAuthenticationRequired,
            TemporaryFailure, ImageHostRateLimitFailure.
        """
        ref = parse_reference(image_url)
        if digest:
            ref = parse_reference(ref.url(digest.lower()))
        return self._manifest(ref, image_url)[0]

    def get_manifest_and_digest(self, image_url):
        """Like :meth:`get_manifest`, also returning the digest.

        :returns: ``(manifest, digest)``; the digest is of the exact bytes
            received.
        """
        return self._manifest(parse_reference(image_url), image_url)

    def get_artifact_index(self, image_url):
        """Fetch the index an image URL names.

        :param image_url: an ``oci://`` URL with a tag or digest.
        :returns: the index as a dict.
        :raises: ImageRefValidationFailed when the URL names a manifest;
            what :meth:`get_manifest` raises.
        """
        index = self.get_manifest(image_url)
        if index.get('mediaType') not in INDEX_TYPES:
            raise exception.ImageRefValidationFailed(
                image_href=image_url,
                reason=_('%s is not an index') % index.get('mediaType'))
        return index

    # Blobs

    def get_blob_url(self, image_url, blob_digest):
        """The HTTP(S) URL of a blob of an image's repository.

        :param image_url: an ``oci://`` URL.
        :param blob_digest: the blob's digest.
        :returns: ``https://host/v2/NAME/blobs/DIGEST``.
        """
        ref = parse_reference(image_url)
        return '%s://%s/v2/%s/blobs/%s' % (
            self._schemes.get(ref.host, 'https'), ref.host, ref.repository,
            blob_digest)

    def _open_blob(self, ref, digest, image_href, headers=None):
        """GET a blob; redirects get Authorization only where it may go."""
        path = '/v2/%s/blobs/%s' % (ref.repository, digest)
        response = self._request(ref, path, image_href, headers=headers,
                                 stream=True, allow_redirects=False)
        trusted = _is_secure_cdn_registry(ref.host)
        origin = urllib.parse.urlsplit(response.url).netloc
        for _redirect in range(CONF.http.max_redirects):
            if response.status_code not in _REDIRECTS:
                return response
            target = urllib.parse.urljoin(response.url,
                                          response.headers.get('Location'))
            response.close()
            redirect_headers = dict(headers or {})
            auth = self._authorization.get((ref.host, ref.repository))
            same_host = urllib.parse.urlsplit(target).netloc == origin
            if auth and (trusted or same_host):
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

    def download_blob(self, image_url, blob_digest, image_file, size=None,
                      progress=None):
        """Download a blob into a file object, verifying its digest.

        :param image_url: an ``oci://`` URL of the repository.
        :param blob_digest: ``sha256:HEX`` or ``sha512:HEX``.
        :param image_file: a binary file object opened for writing.
        :param size: the size the manifest gives, checked when given.
        :param progress: ``progress(done, total)`` callback, or None.
        :returns: the verified digest.
        :raises: ImageChecksumError, ImageDownloadFailed, ImageNotFound,
            ImageServiceAuthenticationRequired, TemporaryFailure.
        """
        ref = parse_reference(image_url)
        if not oci_reference.DIGEST.match(blob_digest or ''):
            raise exception.ImageRefValidationFailed(
                image_href=image_url,
                reason=_('%s is not a sha256 or sha512 digest') % blob_digest)
        href = ref.url(blob_digest)
        algorithm, _sep, value = blob_digest.partition(':')
        expected = checksum_utils.Checksum(algorithm, value)
        response = self._open_blob(ref, blob_digest, href)
        self._check(response, href, _('blob'))
        source = resumable.ResumableResponse(
            response, lambda headers: self._open_blob(ref, blob_digest,
                                                      href, headers),
            href)
        if size is not None and source.total not in (None, size):
            source.close()
            raise exception.ImageDownloadFailed(
                image_href=href,
                reason=_('the registry sends %(sent)s bytes, the manifest '
                         'says %(size)s') % {'sent': source.total,
                                             'size': size})
        hasher = transfer.Hasher(algorithm)
        writer = file_writer.FileWriter(image_file)
        try:
            transfer.stream(source, [hasher, writer],
                            href, expected_size=source.total
                            if source.total is not None else size,
                            progress=progress)
        finally:
            source.close()
        expected.verify(hasher.hexdigest(), href)
        return blob_digest

    def download_blob_from_manifest(self, manifest_url, image_file,
                                    progress=None):
        """Download the one layer of an artifact manifest.

        :param manifest_url: an ``oci://`` URL naming an artifact
            manifest (by digest or tag).
        :param image_file: a binary file object opened for writing.
        :param progress: ``progress(done, total)`` callback, or None.
        :returns: the verified digest of the blob.
        :raises: ImageRefValidationFailed when the manifest does not have
            exactly one layer; what :meth:`download_blob` raises.
        """
        layer = single_layer(self.get_manifest(manifest_url), manifest_url)
        return self.download_blob(manifest_url, layer['digest'], image_file,
                                  size=layer.get('size'), progress=progress)


_MAX_TAG_PAGES = 100


class _Unreachable(exception.TemporaryFailure):
    """The registry could not be reached at all (no HTTP answer)."""


def _is_secure_cdn_registry(host):
    hostname = host.rsplit(':', 1)[0] if not host.endswith(']') else host
    return any(entry.lower() in (host, hostname)
               for entry in CONF.oci.secure_cdn_registries)


def _registry_error(response):
    """The first error code and message of a registry error body.

    Only the first 64 KiB of the body are read: an error body is small,
    and a hostile registry must not make us read a large one.
    """
    try:
        body = next(response.iter_content(_MAX_ERROR_BODY), b'')
        error = json.loads(body)['errors'][0]
        return ': %s %s' % (error.get('code', ''), error.get('message', ''))
    except (ValueError, RecursionError, KeyError, IndexError, TypeError,
            AttributeError, OSError, requests.RequestException):
        return ''


_MAX_ERROR_BODY = 64 * units.Ki


def single_layer(manifest, image_href):
    """The one layer of an artifact manifest.

    :param manifest: the manifest dict.
    :param image_href: the href, for messages.
    :returns: the layer's descriptor dict (with ``digest``, ``size``,
        ``mediaType``, ``annotations``).
    :raises: OciImageNotSpecific for an index; ImageRefValidationFailed
        when there is not exactly one layer or it lacks a digest.
    """
    if manifest.get('mediaType') in INDEX_TYPES or 'manifests' in manifest:
        raise exception.OciImageNotSpecific(
            image_href=image_href,
            reason=_('it names an index; pick one of its manifests '
                     '(identify_specific_image does)'))
    layers = manifest.get('layers')
    if not isinstance(layers, list) or len(layers) != 1:
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('an image artifact has exactly one layer; this '
                     'manifest has %s') % (len(layers) if isinstance(
                         layers, list) else _('none')))
    layer = layers[0]
    if not isinstance(layer, dict) or not oci_reference.DIGEST.match(
            str(layer.get('digest', ''))):
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('the layer has no valid digest'))
    if not isinstance(layer.get('annotations') or {}, dict):
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('the layer annotations are not an object'))
    return layer
