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

"""Checksums given as the URL of a checksum file.

A checksum file is read through the image service of its URL's scheme
(its driver's :meth:`~ironic_images.image_service.base.BaseImageService.get`)
and searched for the image's name by
:func:`ironic_images.transfer.checksums.parse_checksum_file`.
"""

from ironic_images._i18n import _
from ironic_images import exception
from ironic_images import image_service
from ironic_images.transfer import checksums


def fetch_checksum_file(checksum_url):
    """Return the text of a checksum file.

    :param checksum_url: an http(s):// URL, or a file:// URL under
        [file]allowed_paths.
    :returns: the text.
    :raises: ImageChecksumURLNotSupported for another scheme; what the
        image service raises for a URL it cannot read.
    """
    scheme = checksums.url_scheme(checksum_url)
    if scheme not in checksums.CHECKSUM_URL_SCHEMES:
        raise exception.ImageChecksumURLNotSupported(
            checksum_url=checksum_url, image_href=checksum_url,
            reason=_('supported schemes are %s')
            % ', '.join(checksums.CHECKSUM_URL_SCHEMES))
    service = image_service.get_image_service(checksum_url)
    return service.get(checksum_url)


def resolve_checksum(checksum, checksum_algo, image_href):
    """Turn what a caller gave as a checksum into a ``Checksum``.

    :param checksum: None, ``algo:hex``, bare hex, or the URL of a
        checksum file (fetched and searched for the image's name).
    :param checksum_algo: the algorithm of a bare value.
    :param image_href: the image.
    :returns: a :class:`ironic_images.transfer.checksums.Checksum`, or None
        when ``checksum`` is empty.
    :raises: InvalidChecksum, ImageChecksumAlgorithmFailure,
        ImageChecksumURLNotSupported, or the errors of fetching the file.
    """
    if not checksum:
        return None
    if checksums.is_checksum_url(checksum):
        url = str(checksum).strip()
        return checksums.parse_checksum_file(
            fetch_checksum_file(url), image_href, checksum_algo,
            checksum_url=url)
    return checksums.parse_checksum(checksum, checksum_algo, image_href)
