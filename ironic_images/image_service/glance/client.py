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

"""Requests to the Glance v2 REST API through keystoneauth1.

The keystoneauth session, service auth and adapter come from the
``[glance]`` options. A request context that carries a user token makes
the requests in that user's name, against the same endpoint; otherwise
the service's own ``[glance]`` auth is used (or none, for a Glance without
Keystone reached through ``endpoint_override``). A user's token is sent
with a service token beside it when ``[service_user]`` says so
(:mod:`~ironic_images.image_service.glance.service_auth`).

Retries: connection failures and 429/502/503/504 answers are retried
``[glance]num_retries`` times with tenacity, waiting as
:func:`ironic_images.transfer.http_client.backoff` says (exponential with
jitter, ``Retry-After`` honoured) -- the policy every other driver
follows.
keystoneauth's own ``connect_retries``/``status_code_retries`` are left to
their default of none, so there is one retry count to set and retries that
fail end in :class:`~ironic_images.exception.TemporaryFailure`, which
keystoneauth's cannot.
"""

import json
import re
import time
import urllib.parse

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_log import log as logging
import requests
import tenacity

from ironic_images._i18n import _
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.image_service.glance import service_auth
from ironic_images.transfer import bodies
from ironic_images.transfer import http_client

LOG = logging.getLogger(__name__)

GROUP = 'glance'
SERVICE_TYPE = 'image'
RETRY_STATUSES = frozenset([429, 502, 503, 504])
# Answers that mean "the request itself is wrong": retrying cannot help.
INVALID_STATUSES = frozenset([400, 409, 413, 415, 422])
JSON_PATCH = 'application/openstack-images-v2.1-json-patch'
# A catalog or override endpoint may end in a version; paths here carry it.
_VERSION_SUFFIX = re.compile(r'/v\d+(\.\d+)?/?$')
_MAX_REASON = 300
_SESSIONS = {}
_TAGS = re.compile(r'<[^>]*>')


def _conf_snapshot():
    """The [glance] option values, as a hashable cache key."""
    return tuple(sorted((name, repr(CONF[GROUP][name]))
                        for name in CONF[GROUP]))


def _service_session():
    """The session of the current [glance] options, made once.

    Its service token is fetched once and its connection pool reused by
    every image service instance.
    """
    key = _conf_snapshot()
    session = _SESSIONS.get(key)
    if session is None:
        auth = ks_loading.load_auth_from_conf_options(CONF, GROUP)
        session = ks_loading.load_session_from_conf_options(CONF, GROUP,
                                                            auth=auth)
        if session.timeout is None:
            # Without a timeout a stalled Glance would hold a thread
            # forever and a stalled download would never be resumed.
            session.timeout = float(CONF.webserver_connection_timeout)
        if len(_SESSIONS) > 8:
            _SESSIONS.clear()
        # Loading the auth plugin registers its options, which changes
        # the snapshot: the session is found under both.
        _SESSIONS[key] = _SESSIONS[_conf_snapshot()] = session
    return session


def new_adapter(image_href='glance://'):
    """Return a keystoneauth adapter built from the [glance] options.

    :param image_href: the image it is wanted for, for messages.
    :returns: a :class:`keystoneauth1.adapter.Adapter`.
    :raises: ImageRefValidationFailed when the options are incomplete.
    """
    try:
        session = _service_session()
        # The option's default is "image"; an empty value would make
        # every catalog lookup fail.
        return ks_loading.load_adapter_from_conf_options(
            CONF, GROUP, session=session, auth=session.auth,
            service_type=CONF.glance.service_type or SERVICE_TYPE)
    except (ks_exc.ClientException, cfg.Error) as error:
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('the [glance] options are incomplete or conflict: '
                     '%s') % error)


def _is_retryable(error):
    # A certificate that fails verification will fail again.
    return isinstance(error, (http_client.RetryableStatus,
                              ks_exc.ConnectFailure, ks_exc.ConnectTimeout))


def _sleep(seconds):
    time.sleep(seconds)


def error_reason(response):
    """The message of a Glance error answer, short and on one line.

    At most :data:`ironic_images.transfer.bodies.ERROR_BODY` bytes of
    the body are read; the response is closed.

    :param response: the error response, streamed.
    :returns: ``HTTP <status>`` followed by Glance's message.
    """
    try:
        data = bodies.read_capped(response, bodies.ERROR_BODY, 'glance://',
                                  'error body')
    except exception.IronicImagesException:
        data = b''
    text = data.decode(response.encoding or 'utf-8', errors='replace')
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        pass
    else:
        if isinstance(body, dict):
            inner = body.get('error', body)
            text = (inner.get('message') or inner.get('title') or ''
                    if isinstance(inner, dict) else str(inner))
    text = ' '.join(_TAGS.sub(' ', str(text)).split())[:_MAX_REASON]
    reason = 'HTTP %s' % response.status_code
    return masking.mask_text('%s: %s' % (reason, text) if text else reason)


def raise_for_status(response, image_href, error_class):
    """Raise the exception that an error status of Glance means.

    :param response: the response; closed when it is an error.
    :param image_href: the image, for the message.
    :param error_class: the exception for an unexpected status.
    :raises: ImageServiceAuthenticationRequired (401), ImageNotAuthorized
        (403), ImageNotFound (404), ImageRefValidationFailed (400, 409,
        413, 415, 422), ``error_class`` for any other status >= 300.
    """
    status = response.status_code
    if status < 300:
        return
    reason = error_reason(response)
    response.close()
    if status == 401:
        raise exception.ImageServiceAuthenticationRequired(
            image_href=image_href, reason=reason)
    if status == 403:
        raise exception.ImageNotAuthorized(image_href=image_href,
                                           reason=reason)
    if status == 404:
        raise exception.ImageNotFound(image_href=image_href, reason=reason)
    if status in INVALID_STATUSES:
        raise exception.ImageRefValidationFailed(
            image_href=image_href, code=status,
            reason=_('Glance refused the request as invalid (%s)') % reason)
    raise error_class(image_href=image_href, reason=reason)


class GlanceClient:
    """Glance v2 requests on behalf of a context, or of the service.

    :param adapter: a preconfigured keystoneauth
        :class:`~keystoneauth1.adapter.Adapter`; by default one is built
        from the [glance] options.
    :param context: an :class:`oslo_context.context.RequestContext`, or
        None; its ``auth_token``, when set, authenticates the requests
        and its ``global_id`` is sent as ``X-OpenStack-Request-ID``.
    """

    def __init__(self, adapter=None, context=None):
        self._adapter = adapter
        self.context = context
        self._endpoint = None

    @property
    def adapter(self):
        """The keystoneauth adapter, built on first use."""
        if self._adapter is None:
            self._adapter = new_adapter()
        return self._adapter

    def endpoint(self, image_href):
        """The unversioned Glance endpoint, from the override or catalog.

        :param image_href: the image, for the message.
        :returns: a URL without a trailing slash or version.
        :raises: ImageRefValidationFailed when no endpoint is found.
        """
        if self._endpoint is None:
            if self._adapter is None:
                self._adapter = new_adapter(image_href)
            try:
                url = self.adapter.get_endpoint()
            except ks_exc.ClientException as error:
                raise self._ks_error(error, image_href)
            if not url:
                raise exception.ImageRefValidationFailed(
                    image_href=image_href,
                    reason=_('no Glance endpoint: set [glance]'
                             'endpoint_override, or [glance] auth options '
                             'whose catalog lists the image service'))
            self._endpoint = _VERSION_SUFFIX.sub('', url.rstrip('/'))
        return self._endpoint

    def _url(self, path, image_href):
        # Glance's next links are paths; were one absolute, only its path
        # is kept: a response never chooses where a token goes.
        parts = urllib.parse.urlsplit(path)
        path = parts.path + ('?' + parts.query if parts.query else '')
        return self.endpoint(image_href) + path

    def _auth(self, image_href):
        kwargs = {}
        global_id = getattr(self.context, 'global_id', None)
        if global_id:
            kwargs['global_request_id'] = global_id
        token = getattr(self.context, 'auth_token', None)
        if token:
            # The user's token against the endpoint found with the
            # service's configuration: an href never chooses where a token
            # goes.
            kwargs['auth'] = service_auth.user_auth(
                self.endpoint(image_href), token, image_href)
        return kwargs

    def request(self, method, path, image_href,
                error_class=exception.ImageRefValidationFailed,
                retries=None, headers=None, **kwargs):
        """Send one request to Glance, retrying what can be retried.

        :param method: the HTTP method.
        :param path: a path from the root of the endpoint (``/v2/...``),
            as Glance's ``next`` links are.
        :param image_href: the image, for messages.
        :param error_class: the exception for an unexpected status or a
            request that cannot be made.
        :param retries: retries after the first attempt; default
            [glance]num_retries.
        :param headers: extra request headers.
        :param kwargs: passed to the adapter (``json``, ``data``,
            ``params``, ``stream``).
        :returns: the response, with a status below 300. Its body is
            streamed: unless ``stream`` was asked, it is closed unread
            (:meth:`json` reads the bodies that matter, bounded).
        :raises: ImageServiceAuthenticationRequired, ImageNotAuthorized,
            ImageNotFound, ImageRefValidationFailed, ``error_class``;
            TemporaryFailure when connection failures or 502/503/504
            persist; ImageHostRateLimitFailure when 429 persists.
        """
        response = self._request(method, path, image_href, error_class,
                                 retries, headers, **kwargs)
        if not kwargs.get('stream'):
            response.close()
        return response

    def _request(self, method, path, image_href, error_class, retries,
                 headers, **kwargs):
        """:meth:`request`, its body streamed and left open."""
        retries = CONF.glance.num_retries if retries is None else retries
        url = self._url(path, image_href)
        kwargs.update(self._auth(image_href))
        # Never read whole: keystoneauth reads a JSON body to log it at
        # DEBUG, whatever its size, unless told not to log.
        kwargs.update(stream=True, log=False)
        all_headers = {'Accept': 'application/json'}
        all_headers.update(headers or {})

        def _send():
            # Never redirect=True: keystoneauth would follow a redirect to
            # any host with the X-Auth-Token. Glance's API never redirects;
            # a 3xx is an error (raise_for_status).
            response = self.adapter.request(url, method, raise_exc=False,
                                            redirect=False,
                                            headers=all_headers, **kwargs)
            if response.status_code in RETRY_STATUSES:
                retry = http_client.RetryableStatus(response)
                # Read (bounded) now: the last one makes the message.
                retry.reason = error_reason(response)
                raise retry
            return response

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(retries + 1),
            wait=http_client.wait_backoff,
            sleep=_sleep, retry=tenacity.retry_if_exception(_is_retryable),
            before_sleep=lambda state: LOG.warning(
                'Glance %(method)s for %(href)s failed (%(error)s), '
                'retrying', {'method': method,
                             'href': masking.mask_href(image_href),
                             'error': _describe(state.outcome.exception())}),
            reraise=True)
        try:
            response = retrying(_send)
        except http_client.RetryableStatus as error:
            reason = _('%(reason)s after %(n)d attempts') % {
                'reason': error.reason, 'n': retries + 1}
            if error.response.status_code == 429:
                raise exception.ImageHostRateLimitFailure(
                    image_href=image_href, reason=reason)
            raise exception.TemporaryFailure(image_href=image_href,
                                             reason=reason)
        except ks_exc.RetriableConnectionFailure as error:
            raise exception.TemporaryFailure(
                image_href=image_href,
                reason=_('%(error)s after %(n)d attempts') % {
                    'error': _describe(error), 'n': retries + 1})
        except ks_exc.ClientException as error:
            raise self._ks_error(error, image_href, error_class)
        raise_for_status(response, image_href, error_class)
        return response

    def json(self, method, path, image_href, **kwargs):
        """Send a request and return its JSON body (None when empty).

        :param method: the HTTP method.
        :param path: a path from the root of the endpoint.
        :param image_href: the image, for messages.
        :param kwargs: as :meth:`request`.
        :returns: the decoded body.
        :raises: as :meth:`request`; ``error_class`` when the body is not
            JSON.
        """
        error_class = kwargs.pop('error_class',
                                 exception.ImageRefValidationFailed)
        response = self._request(method, path, image_href, error_class,
                                 kwargs.pop('retries', None),
                                 kwargs.pop('headers', None), **kwargs)
        data = bodies.read_capped(response, bodies.GLANCE_RECORD,
                                  image_href, _('Glance answer'),
                                  error_class=error_class)
        if response.status_code == 204 or not data:
            return None
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as error:
            # RecursionError: json's answer to a body nested too deep.
            raise error_class(
                image_href=image_href,
                reason=_('Glance answered %(method)s %(path)s with a body '
                         'that is not JSON: %(error)s') % {
                    'method': method, 'path': path, 'error': error})

    def reopen(self, path, image_href, headers):
        """Send a streaming GET once, whatever its status.

        For :class:`ironic_images.transfer.resumable.ResumableResponse`, which
        counts and spaces reconnections itself and treats requests'
        connection errors as a drop.

        :param path: a path from the root of the endpoint.
        :param image_href: the image, for messages.
        :param headers: extra headers (``Range``, ``If-Range``).
        :returns: the streaming response; a redirect is not followed
            (see :meth:`request`).
        :raises: requests.ConnectionError when no connection can be made.
        """
        all_headers = {'Accept-Encoding': 'identity'}
        all_headers.update(headers)
        try:
            return self.adapter.request(
                self._url(path, image_href), 'GET', raise_exc=False,
                redirect=False, stream=True, headers=all_headers,
                **self._auth(image_href))
        except ks_exc.ConnectionError as error:
            # keystoneauth wraps requests' errors in its own; give back the
            # kind the resuming source knows as a dropped connection.
            raise requests.ConnectionError(_describe(error)) from error
        except ks_exc.ClientException as error:
            # Keystone refused the [service_user] credentials, say.
            raise self._ks_error(error, image_href,
                                 exception.ImageDownloadFailed)

    def _ks_error(self, error, image_href,
                  error_class=exception.ImageRefValidationFailed):
        """Map a keystoneauth exception to one of ours."""
        reason = _describe(error)
        if isinstance(error, (ks_exc.Unauthorized, ks_exc.Forbidden,
                              ks_exc.AuthorizationFailure)):
            groups = ('[glance] or [service_user]'
                      if service_auth.sends_service_token() else '[glance]')
            return exception.ImageServiceAuthenticationRequired(
                image_href=image_href,
                reason=_('Keystone refused the %(groups)s credentials: '
                         '%(reason)s') % {'groups': groups, 'reason': reason})
        if isinstance(error, (ks_exc.EndpointNotFound, ks_exc.CatalogException,
                              ks_exc.AuthPluginException,
                              ks_exc.DiscoveryFailure)):
            return exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('cannot find the Glance endpoint (%s); set '
                         '[glance]endpoint_override or the [glance] auth '
                         'options') % reason)
        return error_class(image_href=image_href, reason=reason)


def _describe(error):
    if isinstance(error, http_client.RetryableStatus):
        return 'HTTP %s' % error.response.status_code
    return masking.mask_text('%s: %s' % (type(error).__name__, error))
