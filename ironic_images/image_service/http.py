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

"""The http:// and https:// image service."""

import urllib.parse

from oslo_log import log as logging
import requests

from ironic_images._i18n import _
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.image_service import base
from ironic_images.image_service import checksum_files
from ironic_images.transfer import bodies
from ironic_images.transfer import file_writer
from ironic_images.transfer import http_client
from ironic_images.transfer import pipeline
from ironic_images.transfer import resumable

LOG = logging.getLogger(__name__)

_HIDDEN_HREF = '<secret URL>'


class HttpImageService(base.BaseImageService):
    """Images served over HTTP(S).

    Redirects are followed up to [http]max_redirects (or refused with
    ImageRefIsARedirect when [http]allow_redirects is False); Basic
    credentials go to the href's host only; TLS verification follows
    [DEFAULT]webserver_verify_ca on every request.
    """

    reports_progress = True

    def __init__(self, client=None, context=None):
        super().__init__(client=client, context=context)
        self._session = None

    @property
    def session(self):
        """The requests session of this service, made on first use."""
        if self._session is None:
            self._session = http_client.new_session()
        return self._session

    @staticmethod
    def verify_basic_auth_cred_format(image_href, user=None, password=None):
        """Check that Basic auth has both a user and a password.

        :param image_href: the href, for the error message.
        :param user: the user name.
        :param password: the password.
        :raises: ImageRefValidationFailed when either is missing.
        """
        if not user or not password:
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('[http]auth_strategy is http_basic but [http]user '
                         'or [http]password is not set'))

    @staticmethod
    def gen_auth_from_conf_user_pass(image_href):
        """Return the Basic auth object built from [http]user/password.

        :param image_href: the href, for error messages.
        :returns: a :class:`requests.auth.HTTPBasicAuth`, or None when
            [http]auth_strategy is not http_basic.
        :raises: ImageRefValidationFailed when credentials are incomplete.
        """
        if CONF.http.auth_strategy != 'http_basic':
            return None
        HttpImageService.verify_basic_auth_cred_format(
            image_href, CONF.http.user, CONF.http.password)
        return requests.auth.HTTPBasicAuth(CONF.http.user,
                                           CONF.http.password)

    def _send(self, method, image_href, error_class, headers=None,
              stream=False, shown_href=None):
        """Send one request with the configured auth, TLS and redirects."""
        allow_redirects = CONF.http.allow_redirects
        response = http_client.request(
            self.session, method, image_href,
            image_href=shown_href or image_href, error_class=error_class,
            headers=headers, stream=stream,
            auth=self.gen_auth_from_conf_user_pass(shown_href or image_href),
            verify=http_client.verify_setting(CONF.webserver_verify_ca),
            timeout=http_client.timeout(), allow_redirects=allow_redirects)
        if not allow_redirects and response.is_redirect:
            target = urllib.parse.urljoin(image_href,
                                          response.headers['Location'])
            response.close()
            raise exception.ImageRefIsARedirect(
                image_href=shown_href or image_href, redirect_url=target)
        return response

    def _check_status(self, response, image_href, error_class, shown_href):
        if response.status_code in (200, 206):
            return
        response.close()
        if response.status_code == 401:
            raise exception.ImageServiceAuthenticationRequired(
                image_href=shown_href or image_href,
                reason=_('HTTP 401 from %s') % _host(response.url))
        raise error_class(
            image_href=shown_href or image_href,
            reason=_('HTTP %(status)s %(text)s') % {
                'status': response.status_code, 'text': response.reason})

    def validate_href(self, image_href, secret=False):
        """Check that an HTTP(S) image exists, with HEAD.

        A server that refuses HEAD (405, 501) is asked for the first byte
        with GET instead.

        :param image_href: the URL.
        :param secret: hide the URL in error messages.
        :returns: the response (its body closed).
        :raises: ImageRefValidationFailed for any failure: its subclasses
            ImageRefIsARedirect for a redirect when redirects are not
            allowed, ImageServiceAuthenticationRequired for 401,
            ImageRefUnavailable (a TemporaryFailure) or
            ImageRefRateLimited (an ImageHostRateLimitFailure) when 5xx
            or 429 persist.
        """
        shown = _HIDDEN_HREF if secret else None
        _check_scheme(image_href, shown)
        error_class = exception.ImageRefValidationFailed
        try:
            response = self._send('HEAD', image_href, error_class,
                                  shown_href=shown)
            if response.status_code in (405, 501):
                LOG.debug('%s refuses HEAD; asking for its first byte',
                          _host(image_href))
                response = self._send('GET', image_href, error_class,
                                      headers={'Range': 'bytes=0-0'},
                                      stream=True, shown_href=shown)
                response.close()
        except exception.TemporaryFailure as error:
            raise exception.validation_failure(error) from None
        self._check_status(response, image_href, error_class, shown)
        return response

    def show(self, image_href):
        """Return the properties of an HTTP(S) image.

        :param image_href: the URL.
        :returns: ``size`` (Content-Length, or the total of a
            Content-Range; None when the server does not say),
            ``updated_at`` (naive UTC from Last-Modified, or None),
            ``properties`` (``etag``, ``content_type``, ``url``: the
            final URL after redirects, its password and credential-like
            query values masked; ``last_modified``) and
            ``no_cache`` (Cache-Control: no-store).
        :raises: as :meth:`validate_href`.
        """
        response = self.validate_href(image_href)
        headers = response.headers
        if response.status_code == 206:
            content_range = resumable.parse_content_range(
                headers.get('Content-Range'))
            size = content_range[2] if content_range else None
        else:
            size = resumable.content_length(response)
        cache_control = headers.get('Cache-Control', '').lower()
        return {
            'size': size,
            'updated_at': http_client.parse_http_date(
                headers.get('Last-Modified')),
            'properties': {
                'etag': headers.get('ETag'),
                'content_type': headers.get('Content-Type'),
                'last_modified': headers.get('Last-Modified'),
                # For a person to read: masked, as in the logs.
                'url': masking.mask_href(response.url),
            },
            'no_cache': 'no-store' in cache_control,
        }

    def cache_validators(self, properties):
        """Revalidate a cached copy by its ETag and Last-Modified.

        :param properties: what :meth:`show` returned.
        :returns: ``etag`` and ``last_modified`` (``fingerprint`` None), or
            None when the server gave neither.
        """
        extra = properties.get('properties') or {}
        etag, last_modified = extra.get('etag'), extra.get('last_modified')
        if not (etag or last_modified):
            return None
        return {'etag': etag, 'last_modified': last_modified,
                'fingerprint': None}

    def is_unchanged(self, image_href, etag=None, last_modified=None,
                     fingerprint=None):
        """Tell whether an image is still the version a cache holds.

        Sends a conditional GET (``If-None-Match`` with ``etag``,
        ``If-Modified-Since`` with ``last_modified``) through the same
        auth, TLS, redirect and retry path as every other request. A 304
        carries no body; a 200 is closed without reading its body, so a
        revalidation never moves the image.

        :param image_href: the URL.
        :param etag: the ``ETag`` the cached copy was downloaded with.
        :param last_modified: its ``Last-Modified`` header value.
        :param fingerprint: unused: HTTP has validators of its own.
        :returns: True on 304 Not Modified; False when the server sends
            the image (it changed, or it ignores the conditions) or when
            there is no validator to send.
        :raises: as :meth:`validate_href`.
        """
        _check_scheme(image_href)
        headers = {}
        if etag:
            headers['If-None-Match'] = etag
        if last_modified:
            headers['If-Modified-Since'] = last_modified
        if not headers:
            return False
        error_class = exception.ImageRefValidationFailed
        response = self._send('GET', image_href, error_class,
                              headers=headers, stream=True)
        try:
            if response.status_code == 304:
                return True
            self._check_status(response, image_href, error_class, None)
            return False
        finally:
            response.close()

    def _open(self, image_href, headers=None):
        """A streaming GET, with status checked."""
        response = self._send('GET', image_href,
                              exception.ImageDownloadFailed,
                              headers=headers, stream=True)
        self._check_status(response, image_href,
                           exception.ImageRefValidationFailed, None)
        return response

    def download(self, image_href, image_file, checksum=None,
                 checksum_algo=None, progress=None):
        """Stream an HTTP(S) image into a file object, verified in transfer.

        The byte count must match Content-Length; a dropped or stalled
        connection is resumed with Range (see
        :mod:`ironic_images.transfer.resumable`).

        :param image_href: the URL.
        :param image_file: a binary file object opened for writing.
        :param checksum: expected checksum: ``algo:hex``, bare hex or the
            URL of a checksum file.
        :param checksum_algo: algorithm of a bare-hex ``checksum``.
        :param progress: ``progress(done, total)`` callback, or None.
        :returns: the checksum verified, ``algo:hex``, or None.
        :raises: ImageRefValidationFailed for an error status;
            ImageChecksumError; ImageDownloadFailed for a transfer that
            cannot complete; TemporaryFailure, ImageHostRateLimitFailure.
        """
        _check_scheme(image_href)
        expected = checksum_files.resolve_checksum(checksum, checksum_algo,
                                                   image_href)
        self._transfer_verified_checksum = None
        hasher = pipeline.Hasher(expected.algorithm) if expected else None
        response = self._open(image_href)
        source = resumable.ResumableResponse(
            response, lambda headers: self._reopen(image_href, headers),
            image_href)
        try:
            stages = [hasher] if hasher else []
            stages.append(file_writer.FileWriter(image_file))
            pipeline.stream(source, stages, image_href,
                            expected_size=source.total, progress=progress)
        finally:
            source.close()
        if expected:
            expected.verify(hasher.hexdigest(), image_href)
            self._transfer_verified_checksum = str(expected)
        return self._transfer_verified_checksum

    def _reopen(self, image_href, headers):
        # One attempt: ResumableResponse counts and spaces the retries.
        return self.session.get(
            image_href, headers=headers, stream=True,
            auth=self.gen_auth_from_conf_user_pass(image_href),
            verify=http_client.verify_setting(CONF.webserver_verify_ca),
            timeout=http_client.timeout(),
            allow_redirects=CONF.http.allow_redirects)

    @staticmethod
    def get(image_href):
        """Return the text of a small document, such as a checksum file.

        :param image_href: the URL.
        :returns: the body as text.
        :raises: ImageRefValidationFailed for an error status;
            ImageDownloadFailed when the body is larger than
            :data:`~ironic_images.transfer.bodies.CHECKSUM_FILE` or the
            transfer fails.
        """
        service = HttpImageService()
        _check_scheme(image_href)
        response = service._send('GET', image_href,
                                 exception.ImageDownloadFailed, stream=True)
        service._check_status(response, image_href,
                              exception.ImageRefValidationFailed, None)
        body = bytearray()
        source = resumable.ResumableResponse(
            response, lambda headers: service._reopen(image_href, headers),
            image_href)
        try:
            pipeline.stream(source, [_Collector(body)], image_href,
                            expected_size=source.total,
                            max_size=bodies.CHECKSUM_FILE)
        finally:
            source.close()
        return body.decode(response.encoding or 'utf-8', errors='replace')


class _Collector:
    """A stage that keeps the bytes in memory."""

    def __init__(self, body):
        self._body = body

    def update(self, data):
        self._body += data

    def reset(self):
        del self._body[:]


def _host(url):
    return urllib.parse.urlsplit(url).netloc.rpartition('@')[2]


def _check_scheme(image_href, shown_href=None):
    try:
        parts = urllib.parse.urlsplit(image_href)
        hostname = parts.hostname
    except ValueError:
        parts = hostname = None
    if (not hostname
            or parts.scheme.lower() not in ('http', 'https')):
        raise exception.ImageRefValidationFailed(
            image_href=shown_href or image_href,
            reason=_('not an http:// or https:// URL with a host'))
