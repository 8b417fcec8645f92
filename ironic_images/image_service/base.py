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

"""The interface every image service driver implements."""

import abc


class BaseImageService(metaclass=abc.ABCMeta):
    """Retrieval of disk images for one family of URL schemes.

    A driver is loaded by :func:`ironic_images.image_service.get_image_service`
    from the ``ironic_images.image_services`` entry-point namespace and
    built as ``Driver(client=client, context=context)``; drivers that need
    neither ignore them.

    :param client: a preconfigured API client, for drivers that use one
        (Glance); None otherwise.
    :param context: the request context, for drivers that act on behalf of
        a user (Glance); None otherwise.
    """

    def __init__(self, client=None, context=None):
        self.client = client
        self.context = context
        self._transfer_verified_checksum = None

    @abc.abstractmethod
    def validate_href(self, image_href):
        """Validate an image reference before anything is read.

        :param image_href: the image reference.
        :raises: ImageRefValidationFailed
        :returns: driver-specific information for further operations.
        """

    @abc.abstractmethod
    def show(self, image_href):
        """Return the properties of an image.

        :param image_href: the image reference.
        :raises: ImageRefValidationFailed, ImageNotFound
        :returns: a dict with at least ``size`` (bytes or None),
            ``updated_at`` (a naive UTC datetime or None) and
            ``properties`` (a dict); drivers add what they know.
        """

    @abc.abstractmethod
    def download(self, image_href, image_file, checksum=None,
                 checksum_algo=None, progress=None):
        """Write an image to a file object, verifying it on the way.

        :param image_href: the image reference.
        :param image_file: a binary file object opened for writing.
        :param checksum: the expected checksum: ``algo:hex``, bare hex or
            the URL of a checksum file; None to verify nothing beyond what
            the source declares.
        :param checksum_algo: the algorithm of a bare-hex ``checksum``.
        :param progress: None, or a callable ``progress(done, total)`` told
            of the bytes moved (``total`` may be None).
        :raises: ImageRefValidationFailed, ImageDownloadFailed,
            ImageChecksumError
        """

    @property
    def is_auth_set_needed(self):
        """Whether the caller must call ``set_image_auth`` first."""
        return False

    @property
    def transfer_verified_checksum(self):
        """The checksum verified during the last download, or None.

        A string ``algo:hex``, so a caller that verified nothing itself
        knows what the transfer proved.
        """
        return self._transfer_verified_checksum
