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

"""What every HTTP-speaking driver shares: sessions, TLS, retries, errors.

Requests always carry an explicit ``verify``, so CA bundle environment
variables cannot override the configuration, and ``Accept-Encoding:
identity``, so the bytes hashed are the bytes of the image.
"""

import datetime
import email.utils
import math
import os
import random
import ssl
import urllib.parse

from oslo_log import log as logging
from oslo_utils import strutils
import requests
import requests.adapters
import tenacity

from ironic_images._i18n import _
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception

LOG = logging.getLogger(__name__)
# Every HTTP request of the library goes through requests and urllib3.
masking.install_log_filters()

RETRY_STATUSES = frozenset([408, 429, 500, 502, 503, 504])
# Longest wait honoured from a Retry-After header: a registry asking for an
# hour must not hold a conductor thread that long.
MAX_RETRY_AFTER = 60.0
# First backoff delay in seconds; it doubles per attempt, with jitter.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 10.0
DEFAULT_HEADERS = {'Accept-Encoding': 'identity'}
# The values of [DEFAULT]webserver_tls_minimum_version.
TLS_VERSIONS = {'1.2': ssl.TLSVersion.TLSv1_2, '1.3': ssl.TLSVersion.TLSv1_3}


def verify_setting(value, option_name='[DEFAULT]webserver_verify_ca'):
    """Turn a "True"/"False"/path option value into requests' ``verify``.

    :param value: the option value.
    :param option_name: the option, for the error message.
    :returns: True, False or the path of a CA bundle.
    :raises: ImageRefValidationFailed when the path does not exist.
    """
    flag = strutils.bool_from_string(value, default=None)
    if flag is not None:
        return flag
    if not os.path.exists(value):
        raise exception.ImageRefValidationFailed(
            image_href=option_name,
            reason=_('CA bundle %s does not exist') % value)
    return value


class TLSAdapter(requests.adapters.HTTPAdapter):
    """An adapter that refuses TLS versions older than a minimum.

    :param minimum_version: an :class:`ssl.TLSVersion`.
    """

    def __init__(self, minimum_version, **kwargs):
        self._minimum_version = minimum_version
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs['ssl_minimum_version'] = self._minimum_version
        return super().init_poolmanager(*args, **kwargs)


def new_session(max_redirects=None):
    """Return a requests session with the configured TLS minimum.

    :param max_redirects: redirects followed at most; default
        [http]max_redirects.
    :returns: a :class:`requests.Session`.
    """
    session = requests.Session()
    adapter = TLSAdapter(TLS_VERSIONS[CONF.webserver_tls_minimum_version])
    session.mount('https://', adapter)
    session.max_redirects = (CONF.http.max_redirects if max_redirects is None
                             else max_redirects)
    session.headers.update(DEFAULT_HEADERS)
    session.hooks['response'].append(_drop_redirect_body)
    return session


def _drop_redirect_body(response, *args, **kwargs):
    """Close a redirect's connection rather than read its body.

    requests reads the whole body of a redirect before following it, to
    reuse the connection: a hostile server's body may never end. Closed,
    it reads as empty; the next request opens a new connection.
    """
    if response.is_redirect:
        response.raw.close()
    return response


def timeout():
    """The (connect, read) timeout for every request."""
    seconds = CONF.webserver_connection_timeout
    return (seconds, seconds)


def parse_http_date(value):
    """Parse an HTTP date (RFC 1123, RFC 850 or asctime) as naive UTC.

    :param value: the header value, or None.
    :returns: a naive UTC datetime, or None when absent or unparseable.
    """
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(
            tzinfo=None)
    return parsed


def retry_after(response):
    """Seconds a response asks to wait (Retry-After), capped, or None."""
    value = (response.headers.get('Retry-After')
             if response is not None else None)
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        when = parse_http_date(value)
        if when is None:
            return None
        now = datetime.datetime.now(datetime.timezone.utc)
        seconds = (when - now.replace(tzinfo=None)).total_seconds()
    if math.isnan(seconds):
        # "nan" parses as a float; sleeping NaN seconds raises ValueError.
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def backoff(attempt, response=None):
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    asked = retry_after(response)
    if asked is not None:
        return asked
    delay = min(BACKOFF_BASE * (2 ** (attempt - 1)), BACKOFF_MAX)
    return delay * random.uniform(0.5, 1.0)


class RetryableStatus(Exception):
    """Raised inside a retry loop for an answer worth asking again.

    :param response: the answer (408, 429, 5xx...); its ``Retry-After``
        is honoured by :func:`wait_backoff`.
    """

    def __init__(self, response):
        super().__init__(response.status_code)
        self.response = response


def _is_retryable(error, retry_unreachable=True):
    # A certificate that fails verification will fail again.
    if isinstance(error, requests.exceptions.SSLError):
        return False
    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return retry_unreachable
    return isinstance(error, RetryableStatus)


def wait_backoff(retry_state):
    """A tenacity ``wait``: :func:`backoff` for the failed attempt.

    :param retry_state: tenacity's state of the retry loop.
    :returns: the seconds to wait.
    """
    error = retry_state.outcome.exception()
    return backoff(retry_state.attempt_number,
                   getattr(error, 'response', None))


def is_certificate_failure(error):
    """Whether a request failed because a certificate was not trusted.

    :param error: an exception raised by requests.
    :returns: True when an ``ssl.SSLCertVerificationError`` is among its
        causes (not for a server that does not speak TLS at all).
    """
    return any(isinstance(cause, ssl.SSLCertVerificationError)
               or 'CERTIFICATE_VERIFY_FAILED' in str(cause)
               for cause in _causes(error))


def _causes(error):
    """An exception and all it came from (arguments too), once each.

    requests and urllib3 wrap the system's error several times over, in
    ``args``, ``reason``, ``__cause__`` and ``__context__``.
    """
    seen = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseException):
            pending.extend(current.args)
            pending.extend([getattr(current, 'reason', None),
                            current.__cause__, current.__context__])


def request(session, method, url, image_href=None, retries=None,
            error_class=exception.ImageDownloadFailed,
            certificate_error_class=None, retry_unreachable=True,
            **kwargs):
    """Send a request, retrying connection failures, 429 and 5xx.

    :param session: a :class:`requests.Session`.
    :param method: the HTTP method.
    :param url: the URL.
    :param image_href: the href for error messages (default ``url``).
    :param retries: retries after the first attempt; default
        [download]retries.
    :param error_class: the exception for a request that cannot be made
        (connection refused, timeout, TLS failure, redirect loop).
    :param certificate_error_class: the exception for a certificate that
        fails verification; default ``error_class``.
    :param retry_unreachable: whether a host that cannot be reached
        (refused, unknown, timed out) is asked again; False when another
        host can serve instead (a mirror).
    :param kwargs: passed to :meth:`requests.Session.request`; ``verify``
        and ``timeout`` must be among them.
    :returns: the response, whatever its status unless a retryable one.
    :raises: ``error_class``; TemporaryFailure when 5xx persists;
        ImageHostRateLimitFailure when 429 persists.
    """
    image_href = image_href or url
    retries = CONF.download.retries if retries is None else retries

    def _send():
        try:
            response = session.request(method, url, **kwargs)
        except ValueError as error:
            # urllib.parse raises ValueError for a malformed URL, such as
            # the Location of a redirect ("http://[x/"); requests lets it
            # through. It will not parse better on a retry.
            raise requests.exceptions.InvalidURL(
                _('malformed URL: %s') % error) from None
        if response.status_code in RETRY_STATUSES:
            response.close()
            raise RetryableStatus(response)
        return response

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retries + 1),
        wait=wait_backoff,
        retry=tenacity.retry_if_exception(
            lambda error: _is_retryable(error, retry_unreachable)),
        before_sleep=lambda state: LOG.warning(
            '%(method)s %(href)s failed (%(error)s), retrying',
            {'method': method, 'href': masking.mask_href(image_href),
             'error': describe(state.outcome.exception(), url, image_href)}),
        reraise=True)
    try:
        return retrying(_send)
    except RetryableStatus as error:
        status = error.response.status_code
        reason = _('HTTP %(status)s after %(n)d attempts') % {
            'status': status, 'n': retries + 1}
        if status == 429:
            raise exception.ImageHostRateLimitFailure(
                image_href=image_href, reason=reason)
        raise exception.TemporaryFailure(image_href=image_href,
                                         reason=reason)
    except requests.TooManyRedirects:
        raise error_class(
            image_href=image_href,
            reason=_('more than %d redirects, or a redirect loop')
            % session.max_redirects)
    except requests.RequestException as error:
        if certificate_error_class and is_certificate_failure(error):
            error_class = certificate_error_class
        raise error_class(image_href=image_href,
                          reason=describe(error, url, image_href))


def _socket_error(error):
    """The system's error at the root of a connection failure, or None."""
    for cause in _causes(error):
        if (isinstance(cause, OSError) and cause.strerror
                and not isinstance(cause, requests.RequestException)):
            return cause
    return None


def describe(error, url, shown_href):
    """Say why a request failed, without the URL when it is hidden.

    :param error: the exception.
    :param url: the URL requested.
    :param shown_href: what may be shown instead of the URL; when it is
        not the URL itself, the URL and its path are taken out of the text
        (requests puts the path in its messages).
    :returns: a one-line reason, credentials masked (it goes to log
        lines as well as to exceptions).
    """
    if isinstance(error, RetryableStatus):
        return 'HTTP %s' % error.response.status_code
    if isinstance(error, requests.exceptions.SSLError):
        root = _socket_error(error)
        text = _('TLS failure: %s') % (root.strerror if root else error)
    elif isinstance(error, requests.Timeout):
        return _('timed out after %ss') % CONF.webserver_connection_timeout
    elif (isinstance(error, requests.ConnectionError)
          and _socket_error(error) is not None):
        # requests and urllib3 wrap the system's answer in three layers
        # of repr; it alone says why ("Connection refused").
        return _('cannot connect to %(host)s: %(error)s') % {
            'host': urllib.parse.urlsplit(url).netloc.rpartition('@')[2],
            'error': _socket_error(error).strerror}
    else:
        text = '%s: %s' % (type(error).__name__, error)
    if shown_href != url:
        parts = urllib.parse.urlsplit(url)
        for secret in (url, parts.path + ('?' + parts.query
                                          if parts.query else ''),
                       parts.path):
            if secret and secret != '/':
                text = text.replace(secret, shown_href)
    return masking.mask_text(text)
