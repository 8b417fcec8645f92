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

"""What the master-image cache did for a caller, and why.

:class:`CachedImage` is what a caller gets back; :class:`Found` what the
lookup of a master found under its lock; the reasons say why an image
was not cached.
"""

import collections
import typing

from ironic_images._i18n import _

CachedImage = collections.namedtuple(
    'CachedImage', ['path', 'master', 'hit', 'format', 'virtual_size',
                    'size', 'checksum', 'reason', 'converted'],
    defaults=(None, False))
CachedImage.__doc__ = """What :meth:`~ironic_images.cache.cache.ImageCache.\
fetch_image` put in place.

:ivar path: the destination.
:ivar master: the master it is linked to, or None when the cache was
    bypassed.
:ivar hit: True when no download was needed.
:ivar format: the format of the file (``raw`` after a conversion).
:ivar virtual_size: the disk size it describes, or None.
:ivar size: its size in bytes.
:ivar checksum: ``algo:hex`` verified when it was downloaded, or None.
:ivar reason: why the cache was bypassed (``master`` None), else None.
:ivar converted: True when the raw master was made, without a download,
    from the cached master of the image as it came.
"""

# Why an image is not cached, as CachedImage.reason says it.
LOCAL_REASON = _('the image is a file of this host already')
NO_CACHE_REASON = _('its image service says not to cache it (an HTTP '
                    'server\'s Cache-Control: no-store)')
NO_VALIDATOR_REASON = _('nothing would tell a new version of it from the '
                        'cached one (no ETag, Last-Modified, checksum or '
                        'digest)')


class Found(typing.NamedTuple):
    """What the lookup of a master found, under its lock."""

    meta: typing.Optional[dict]
    hit: bool
    reason: typing.Optional[str] = None
    converted: bool = False


def bypassed(dest, fetched, reason):
    """The answer for an image fetched straight to its destination.

    :param dest: the destination.
    :param fetched: the :class:`~ironic_images.fetch.fetcher.FetchedImage`.
    :param reason: why it was not cached.
    :returns: a :class:`CachedImage`.
    """
    return CachedImage(dest, None, False, fetched.format,
                       fetched.virtual_size, fetched.size, fetched.checksum,
                       reason)


def result(dest, master, found):
    """The answer for an image handed out from its master.

    :param dest: the destination.
    :param master: the master's path.
    :param found: the :class:`Found` of the lookup.
    :returns: a :class:`CachedImage`.
    """
    meta = found.meta
    return CachedImage(dest, master, found.hit, meta.get('format'),
                       meta.get('virtual_size'), meta['size'],
                       meta.get('checksum'), None, found.converted)
