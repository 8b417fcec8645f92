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

"""Read a small body from the network whole, never more than its cap.

Every body the library keeps in memory -- a token response, a tag list,
a manifest, an error body, a checksum file, a Glance record -- is read
with :func:`read_capped` under one of the caps below, so a server that
streams forever costs at most the cap plus one chunk of memory. Images
themselves are never read whole: they go through the pipeline.

A response given to :func:`read_capped` must have been requested with
``stream=True``; otherwise requests has read it whole already.
"""

from oslo_utils import units
import requests

from ironic_images._i18n import _
from ironic_images.common import masking
from ironic_images import exception
from ironic_images.transfer import resumable

#: A registry's token response: a JSON object around a token. Real ones
#: (JWTs with their certificate chain) are a few KiB.
TOKEN_RESPONSE = 256 * units.Ki
#: One page of an OCI tag list (about 100,000 short tag names).
TAG_LIST_PAGE = 4 * units.Mi
#: All the pages of a tag list together.
TAG_LIST_TOTAL = 16 * units.Mi
#: The first page of a tag list read to name the tags in an error.
TAG_LIST_HINT = 256 * units.Ki
#: An OCI manifest or index: registries refuse to store larger ones
#: (distribution's limit is 4 MiB).
MANIFEST = 4 * units.Mi
#: The body of an error answer, read for its message only.
ERROR_BODY = 64 * units.Ki
#: A checksum file (``SHA256SUMS``...), even one listing many images.
CHECKSUM_FILE = 16 * units.Mi
#: A Glance answer: one image record, or one page of a list of them
#: (Glance caps a page at 1000 images of a few KiB each).
GLANCE_RECORD = 16 * units.Mi

# Read this much at a time: small enough to overshoot a cap by little.
_CHUNK = 64 * units.Ki


def read_capped(response: requests.Response, cap: int, image_href: str,
                what: str,
                error_class=exception.ImageRefValidationFailed) -> bytes:
    """Read a streamed response's body whole, refusing one over ``cap``.

    Reading stops at ``cap + 1`` bytes (one chunk at most past the cap is
    ever in memory); a Content-Length above the cap is refused before any
    byte is read. The response is closed in every case.

    :param response: a ``requests.Response`` got with ``stream=True``.
    :param cap: the most bytes accepted.
    :param image_href: the image, for messages (masked).
    :param what: what the body is (``token response``, ``tag list``...).
    :param error_class: the exception for a body over the cap.
    :returns: the body, decoded from any Content-Encoding.
    :raises: ``error_class`` naming the cap when the body is larger;
        ImageDownloadFailed when the connection breaks during the read.
    """
    try:
        declared = resumable.content_length(response)
        if declared is not None and declared > cap:
            raise _too_large(error_class, image_href, what, cap)
        body = bytearray()
        try:
            for chunk in response.iter_content(min(cap + 1, _CHUNK)):
                body += chunk
                if len(body) > cap:
                    raise _too_large(error_class, image_href, what, cap)
        except resumable.DROPS as error:
            raise exception.ImageDownloadFailed(
                image_href=image_href,
                reason=_('reading the %(what)s: %(error)s') % {
                    'what': what, 'error': masking.mask_text(
                        '%s: %s' % (type(error).__name__, error))})
        return bytes(body)
    finally:
        response.close()


def _too_large(error_class, image_href, what, cap):
    return error_class(
        image_href=image_href,
        reason=_('the %(what)s is larger than %(cap)d bytes, the most '
                 'accepted') % {'what': what, 'cap': cap})
