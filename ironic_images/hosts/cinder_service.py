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

"""Cinder's own image service, seen through the library's driver contract.

Cinder hands its ``image_utils`` functions its ``image_service`` (a
``cinder.image.glance.GlanceImageService``: ``show(context, image_id)``
returns a dict, ``download(context, image_id, data)`` writes the image to
the file object ``data``). :class:`CinderImageService` wraps it and a
request context as a driver
(:class:`~ironic_images.image_service.base.BaseImageService`), so that the
library's fetch takes the bytes from Cinder's object and does the rest
itself: it hashes what Cinder's download writes and verifies it against
the image's ``os_hash_value`` (or md5 ``checksum``) and size, then
decompresses, inspects and writes the image as for any other driver.

What Cinder's object raises (its ``ImageNotFound``, ``ImageNotAuthorized``
...) reaches the caller unchanged: Cinder's code catches those.
"""

import datetime
import typing

from oslo_utils import timeutils

from ironic_images._i18n import _
from ironic_images import exception
from ironic_images.image_service import base
from ironic_images.image_service import checksum_files
from ironic_images.image_service.glance import metadata as glance_metadata


def _naive_utc(value):
    """A naive UTC datetime from a datetime or an ISO 8601 string."""
    if isinstance(value, datetime.datetime):
        return timeutils.normalize_time(value)
    if isinstance(value, str) and value:
        try:
            return timeutils.normalize_time(timeutils.parse_isotime(value))
        except ValueError:
            return None
    return None


class _VerifyingWriter:
    """The file object handed to Cinder's download: hashed, counted.

    Every chunk is hashed for each expected checksum, counted, and written
    to the library's image file (an
    :class:`~ironic_images.sink.image_sink.ImageSink` during a fetch).
    """

    def __init__(self, image_file, expected):
        self._file = image_file
        self._hashers = [(checksum, checksum.new_hasher())
                         for checksum in expected]
        self.size = 0

    def write(self, data):
        view = memoryview(data).cast('B')
        for _checksum, hasher in self._hashers:
            hasher.update(view)
        self._file.write(view)
        self.size += len(view)
        return len(view)

    def flush(self):
        pass

    def verify(self, image_href):
        """Raise unless every expected checksum matches what was written.

        :raises: ImageChecksumError
        """
        for checksum, hasher in self._hashers:
            checksum.verify(hasher.hexdigest(), image_href)


class CinderImageService(base.BaseImageService):
    """A Cinder ``image_service`` and a context, as a library driver.

    :param image_service: Cinder's image service object: it has
        ``show(context, image_id)`` and ``download(context, image_id,
        data=None)``.
    :param context: the request context Cinder passes to it.
    """

    def __init__(self, image_service, context=None):
        super().__init__(client=None, context=context)
        self.image_service = image_service
        self._shown = {}

    def validate_href(self, image_href: str) -> dict:
        """Check that Cinder's image service shows the image.

        :param image_href: the image id.
        :returns: what :meth:`show` returns.
        :raises: what Cinder's ``show`` raises; ImageRefValidationFailed
            when it answers with something that is not an image.
        """
        return self.show(image_href)

    def show(self, image_href: str) -> dict:
        """The image's properties, as Cinder's ``show`` gives them.

        Asked once per instance: an instance lives for one call of a host
        function, which shows the image and then fetches it.

        :param image_href: the image id.
        :returns: Cinder's dict, with ``updated_at`` and ``created_at`` as
            naive UTC datetimes, ``properties`` a dict that also holds the
            image's format and checksum attributes.
        :raises: what Cinder's ``show`` raises; ImageRefValidationFailed
            when it answers with something that is not an image.
        """
        shown = self._shown.get(image_href)
        if shown is not None:
            return dict(shown)
        meta = self.image_service.show(self.context, image_href)
        if not isinstance(meta, dict):
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('Cinder\'s image service showed a %s, not an '
                         'image') % type(meta).__name__)
        shown = dict(meta)
        for key in ('created_at', 'updated_at'):
            shown[key] = _naive_utc(meta.get(key))
        properties = shown.get('properties')
        properties = dict(properties) if isinstance(properties, dict) else {}
        for key in glance_metadata.PROPERTY_ATTRIBUTES:
            if key in shown:
                properties.setdefault(key, shown[key])
        shown['properties'] = properties
        shown.setdefault('size', None)
        self._shown[image_href] = shown
        return dict(shown)

    def resolve(self, image_href: str,
                cpu_arch: typing.Optional[str] = None) -> base.ResolvedImage:
        """The image itself, with what :meth:`show` says of it.

        :param image_href: the image id.
        :param cpu_arch: unused.
        :returns: a :class:`~ironic_images.image_service.base.ResolvedImage`
            with no content key: the library's cache is not used for
            Cinder's images.
        :raises: as :meth:`show`.
        """
        return base.ResolvedImage(image_href, self.show(image_href))

    def download(self, image_href: str, image_file: typing.BinaryIO,
                 checksum: typing.Optional[str] = None,
                 checksum_algo: typing.Optional[str] = None
                 ) -> typing.Optional[str]:
        """Have Cinder's image service write the image; verify it here.

        :param image_href: the image id.
        :param image_file: a binary file object opened for writing.
        :param checksum: an extra expected checksum, or None.
        :param checksum_algo: the algorithm of a bare-hex ``checksum``.
        :returns: the checksum verified, ``algo:hex``, or None when the
            image has none (only its size is then verified).
        :raises: what Cinder's ``download`` raises; ImageDownloadFailed
            when the size is not the image's; ImageChecksumError;
            ImageChecksumAlgorithmFailure (an md5-only image while
            [DEFAULT]allow_md5_checksum is False).
        """
        self._transfer_verified_checksum = None
        properties = self.show(image_href)
        own = glance_metadata.own_checksum(properties, image_href)
        extra = checksum_files.resolve_checksum(checksum, checksum_algo,
                                                image_href)
        expected = [c for c in (own, extra) if c is not None]
        if own is not None and extra == own:
            expected = [own]
        writer = _VerifyingWriter(image_file, expected)
        self.image_service.download(self.context, image_href, writer)
        size = properties.get('size')
        if not writer.size or (size is not None and writer.size != size):
            raise exception.ImageDownloadFailed(
                image_href=image_href,
                reason=_('Cinder\'s image service wrote %(got)d bytes of '
                         'an image of %(size)s') % {
                    'got': writer.size,
                    'size': size if size is not None else _('unknown size')})
        writer.verify(image_href)
        if expected:
            self._transfer_verified_checksum = str(expected[0])
        return self._transfer_verified_checksum
