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

"""zip:// images: one member of a zip archive on a local disk.

``zip:///srv/images/bundle.zip#disk.qcow2`` names the member
``disk.qcow2`` of the archive ``/srv/images/bundle.zip``, which must be
under ``[file]allowed_paths`` as a ``file://`` image must.

A third-party driver with exactly the minimal contract: ``download()``
takes no ``progress`` and returns nothing.
"""

import datetime
import os
import urllib.parse
import zipfile
import zlib

from ironic_images import checksum_utils
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.image_service import base

CHUNK_SIZE = 1024 * 1024
# What a damaged archive raises while a member is read.
_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error)


class ZipImageService(base.BaseImageService):
    """Images kept as members of zip archives."""

    def validate_href(self, image_href):
        """Check a ``zip://`` href.

        :returns: the archive's resolved path and the member's name.
        :raises: ImageRefValidationFailed
        """
        url = urllib.parse.urlsplit(image_href)
        if url.scheme != 'zip' or url.netloc or not url.fragment:
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason='expected zip:///PATH/TO/ARCHIVE.zip#MEMBER')
        # Resolved first, so that a symbolic link cannot lead outside.
        archive = os.path.realpath(urllib.parse.unquote(url.path))
        allowed = [os.path.realpath(p) for p in CONF.file.allowed_paths]
        if not any(os.path.commonpath([archive, d]) == d for d in allowed):
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason='the archive is not under [file]allowed_paths')
        return archive, urllib.parse.unquote(url.fragment)

    def _open(self, image_href):
        """The open archive and the ``ZipInfo`` of the member."""
        archive, name = self.validate_href(image_href)
        try:
            bundle = zipfile.ZipFile(archive)
        except FileNotFoundError:
            raise exception.ImageNotFound(image_href=image_href,
                                          reason='no such archive')
        except (OSError, zipfile.BadZipFile) as error:
            raise exception.ImageDownloadFailed(image_href=image_href,
                                                reason=error)
        try:
            return bundle, bundle.getinfo(name)
        except KeyError:
            bundle.close()
            raise exception.ImageNotFound(image_href=image_href,
                                          reason='no such member')

    def show(self, image_href):
        """Return the member's size and the archive's modification time.

        :raises: ImageRefValidationFailed, ImageNotFound,
            ImageDownloadFailed
        """
        bundle, info = self._open(image_href)
        with bundle:
            mtime = os.stat(bundle.filename).st_mtime
        updated_at = datetime.datetime.fromtimestamp(
            mtime, datetime.timezone.utc).replace(tzinfo=None)
        return {'size': info.file_size, 'updated_at': updated_at,
                'properties': {'member': info.filename}}

    def download(self, image_href, image_file, checksum=None,
                 checksum_algo=None):
        """Write the member to ``image_file``, verifying ``checksum``.

        :raises: ImageRefValidationFailed, ImageNotFound,
            ImageDownloadFailed, ImageChecksumError
        """
        # None, or a parsed checksum (a checksum file's URL is read).
        expected = checksum_utils.resolve_checksum(checksum, checksum_algo,
                                                   image_href)
        hasher = expected.new_hasher() if expected else None
        bundle, info = self._open(image_href)
        try:
            with bundle, bundle.open(info) as member:
                while chunk := member.read(CHUNK_SIZE):
                    if hasher is not None:
                        hasher.update(chunk)
                    image_file.write(chunk)
        except _READ_ERRORS as error:
            raise exception.ImageDownloadFailed(image_href=image_href,
                                                reason=error)
        if expected is not None:
            expected.verify(hasher.hexdigest(), image_href)
