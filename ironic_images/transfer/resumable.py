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

"""A transfer source over an HTTP GET that survives dropped connections.

A :class:`ResumableResponse` asks for the body again from the first
missing byte with ``Range`` when the connection drops, stalls or ends
early, guarded by ``If-Range`` so that a changed image is never spliced
onto the old one; a server that answers the whole body instead makes the
pipeline start again from the first byte
(:class:`ironic_images.transfer.pipeline.RestartTransfer`).
"""

import http.client
import re
import time

from oslo_log import log as logging
from oslo_utils import units
import requests
import urllib3

from ironic_images._i18n import _
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.transfer import http_client
from ironic_images.transfer import pipeline

LOG = logging.getLogger(__name__)

# Errors that mean "the connection broke", not "the request is wrong".
DROPS = (OSError, http.client.HTTPException, urllib3.exceptions.HTTPError,
         requests.RequestException)
# Progress after which a new failure counts as the first again: a long
# transfer over a flaky link may drop more often than [download]retries,
# as long as it keeps moving.
_PROGRESS_RESETS_RETRIES = 16 * units.Mi
_CONTENT_RANGE = re.compile(r'^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$')


class _BodyEndedEarly(Exception):
    """The body ended before Content-Length said it would."""


def content_length(response):
    """The Content-Length of a response as an int, or None."""
    try:
        value = int(response.headers['Content-Length'])
    except (KeyError, ValueError):
        return None
    return value if value >= 0 else None


def parse_content_range(value):
    """Parse ``bytes FIRST-LAST/TOTAL``.

    :returns: ``(first, last, total)``, total None when ``*``; or None
        when the header is absent or malformed.
    """
    match = _CONTENT_RANGE.match(value or '')
    if not match:
        return None
    first, last, total = match.groups()
    first, last = int(first), int(last)
    total = None if total == '*' else int(total)
    if last < first or (total is not None and last >= total):
        return None
    return first, last, total


def validator(response):
    """The If-Range validator of a response: a strong ETag, else the date.

    A weak ETag (``W/...``) cannot guard a Range request.
    """
    etag = response.headers.get('ETag')
    if etag and not etag.startswith('W/'):
        return etag
    return response.headers.get('Last-Modified')


def _describe(error):
    # urllib3 puts the request path, query included, in its messages, and
    # this text goes to a log line.
    return masking.mask_text('%s: %s' % (type(error).__name__, error))


def _body_reader(response):
    """Return a readinto function for a response's raw body.

    An unencoded body is read straight from http.client into the pipeline's
    buffers; urllib3's own readinto copies every byte twice more.
    """
    raw = response.raw
    encoded = response.headers.get('Content-Encoding', 'identity')
    direct = getattr(raw, '_fp', None)
    if encoded.lower() == 'identity' and hasattr(direct, 'readinto'):
        return direct.readinto

    def readinto(buffer):
        data = raw.read(len(buffer), decode_content=True)
        buffer[:len(data)] = data
        return len(data)
    return readinto


class ResumableResponse:
    """The body of a successful GET as a resuming transfer source.

    :param response: the streaming 200 response to read.
    :param reopen: ``reopen(headers)`` sends the GET again with extra
        headers and returns the streaming response, whatever its status.
    :param image_href: the href, for messages.
    :param resume: use Range requests; default [download]resume.
    :param retries: reconnections without progress before giving up;
        default [download]retries.
    """

    def __init__(self, response, reopen, image_href, resume=None,
                 retries=None):
        self._reopen = reopen
        self._href = image_href
        self._resume = CONF.download.resume if resume is None else resume
        self._retries = (CONF.download.retries if retries is None
                         else retries)
        self._failures = 0
        self._refusal = None
        self._progress_mark = 0
        self.offset = 0
        self.drops = 0
        self._use(response)
        self.total = content_length(response)

    def _use(self, response):
        self.response = response
        self._validator = validator(response)
        self._readinto = _body_reader(response)

    def close(self):
        """Close the current response."""
        self.response.close()

    def readinto(self, buffer):
        """Read the next bytes into ``buffer``, reconnecting as needed.

        :returns: the count read; 0 at the end of the body.
        :raises: RestartTransfer when the next bytes are the first again;
            ImageDownloadFailed when reconnecting fails.
        """
        while True:
            try:
                count = self._readinto(buffer)
                if (not count and self.total is not None
                        and self.offset < self.total):
                    raise _BodyEndedEarly()
            except (_BodyEndedEarly,) + DROPS as error:
                self._recover(error)
                continue
            self.offset += count
            return count

    def _recover(self, error):
        self.drops += 1
        if self.offset - self._progress_mark >= _PROGRESS_RESETS_RETRIES:
            self._failures = 0
        self._progress_mark = self.offset
        reason = (_('the body ended at byte %(offset)d of %(total)s') % {
            'offset': self.offset, 'total': self.total}
            if isinstance(error, _BodyEndedEarly) else _describe(error))
        self.response.close()
        while True:
            self._failures += 1
            if self._failures > self._retries:
                raise exception.ImageDownloadFailed(
                    image_href=self._href,
                    reason=_('%(reason)s; gave up after %(n)d retries') % {
                        'reason': reason, 'n': self._retries})
            LOG.warning('Transfer of %(href)s interrupted at byte %(offset)d '
                        '(%(reason)s); retry %(n)d of %(max)d',
                        {'href': masking.mask_href(self._href),
                         'offset': self.offset, 'reason': reason,
                         'n': self._failures, 'max': self._retries})
            time.sleep(http_client.backoff(self._failures, self._refusal))
            self._refusal = None
            try:
                if self._resume_from_offset():
                    return
            except DROPS as retry_error:
                reason = _describe(retry_error)
            else:
                reason = _('HTTP %s when reconnecting') % (
                    self._refusal.status_code)

    def _resume_from_offset(self):
        """Reconnect; True when reading can go on, else keep retrying."""
        headers = {}
        if self._resume and self.offset and self._validator:
            headers = {'Range': 'bytes=%d-' % self.offset,
                       'If-Range': self._validator}
        response = self._reopen(headers)
        if response.status_code == 206 and headers:
            if self._continue_partial(response):
                return True
            # Another version of the image answered the Range request:
            # only the whole body of that version can be used.
            response = self._reopen({})
        return self._start_over(response)

    def _start_over(self, response):
        """Read a whole new body, when the server sent one."""
        status = response.status_code
        if status == 200:
            restart = self.offset > 0
            self._use(response)
            self.total = content_length(response)
            self.offset = 0
            if restart:
                raise pipeline.RestartTransfer(self.total)
            return True
        response.close()
        if status in http_client.RETRY_STATUSES:
            # Kept for its Retry-After.
            self._refusal = response
            return False
        raise exception.ImageDownloadFailed(
            image_href=self._href,
            reason=_('HTTP %(status)s when resuming at byte %(offset)d') % {
                'status': status, 'offset': self.offset})

    def _continue_partial(self, response):
        """Go on with a 206; False when it is of another version."""
        if not _same_version(self._validator, response):
            LOG.warning('The server answered a resume of %s with a part of '
                        'another version of the image; starting over',
                        masking.mask_href(self._href))
            response.close()
            return False
        content_range = parse_content_range(
            response.headers.get('Content-Range'))
        if (content_range is None or content_range[0] != self.offset
                or (self.total is not None
                    and content_range[2] not in (None, self.total))):
            response.close()
            raise exception.ImageDownloadFailed(
                image_href=self._href,
                reason=_('the server answered a resume at byte %(offset)d '
                         'with Content-Range %(range)s') % {
                    'offset': self.offset,
                    'range': response.headers.get('Content-Range')})
        self._use(response)
        return True


def _same_version(expected, response):
    """Whether a 206 carries the validator the first response had.

    If-Range should make a server send the whole body when the image
    changed; a proxy that ignores it may not, so a part is spliced on only
    when its validator, where it sends one, is the same.
    """
    if expected.startswith('"'):
        etag = response.headers.get('ETag')
        return etag is None or etag == expected
    modified = response.headers.get('Last-Modified')
    return modified is None or modified == expected
