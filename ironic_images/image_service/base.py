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

"""The contract between the library and an image service driver.

A driver implements :meth:`~BaseImageService.validate_href`,
:meth:`~BaseImageService.show` and :meth:`~BaseImageService.download`.
Everything else the library may ask of a driver is declared here, with a
default that is right for a driver that knows nothing more; the rest of
the library asks this contract, never a scheme name or ``hasattr``.
"""

import abc
import json
import typing

from ironic_images._i18n import _
from ironic_images import exception

# What tells versions of an image apart in what show() returns.
_FINGERPRINT_KEYS = ('size', 'updated_at', 'checksum', 'digest',
                     'os_hash_value')


class ResolvedImage(typing.NamedTuple):
    """One specific image that a reference names today.

    :ivar href: what to download: one artifact, never a tag.
    :ivar properties: what :meth:`BaseImageService.show` returns for
        ``href``, when resolving learnt it; None otherwise.
    :ivar content_key: names content that never changes under this key,
        prefixed so it is unique among drivers (``glance-<id>``,
        ``oci-sha256:<hex>``); None when what ``href`` serves may change.
    """

    href: str
    properties: typing.Optional[dict] = None
    content_key: typing.Optional[str] = None


def fingerprint_of(properties: dict) -> typing.Optional[str]:
    """What tells versions of an image apart in ``show()``'s answer.

    :param properties: what a driver's ``show()`` returned.
    :returns: a string, or None when nothing but the size is known (the
        size alone does not tell a new version).
    """
    extra = properties.get('properties') or {}
    values = {key: properties.get(key) for key in _FINGERPRINT_KEYS}
    values['etag'] = extra.get('etag') if isinstance(extra, dict) else None
    if not any(values[key] for key in values if key != 'size'):
        return None
    return json.dumps(values, sort_keys=True, default=str)


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

    #: Whether :meth:`download` takes ``progress=``. When False the library
    #: counts the bytes the driver writes instead.
    reports_progress: bool = False

    #: Whether the driver's images are files of this host already. The
    #: master-image cache does not keep copies of them (nor touch its
    #: directory for them): a caller's copy is made from the image itself.
    is_local: bool = False

    def __init__(self, client=None, context=None):
        self.client = client
        self.context = context
        self._transfer_verified_checksum = None

    # -- What every driver implements ------------------------------------

    @abc.abstractmethod
    def validate_href(self, image_href: str):
        """Validate an image reference before anything is read.

        :param image_href: the image reference.
        :raises: ImageRefValidationFailed
        :returns: driver-specific information for further operations.
        """

    @abc.abstractmethod
    def show(self, image_href: str) -> dict:
        """Return the properties of an image.

        :param image_href: the image reference.
        :raises: ImageRefValidationFailed, ImageNotFound
        :returns: a dict with at least ``size`` (bytes or None),
            ``updated_at`` (a naive UTC datetime or None) and
            ``properties`` (a dict); drivers add what they know
            (``checksum``, ``digest``, ``no_cache``...).
        """

    @abc.abstractmethod
    def download(self, image_href: str, image_file: typing.BinaryIO,
                 checksum: typing.Optional[str] = None,
                 checksum_algo: typing.Optional[str] = None
                 ) -> typing.Optional[str]:
        """Write an image to a file object, verifying it on the way.

        A driver whose :attr:`reports_progress` is True also takes
        ``progress``: None, or a callable ``progress(done, total)`` told of
        the bytes moved (``total`` may be None).

        :param image_href: the image reference.
        :param image_file: a binary file object opened for writing.
        :param checksum: the expected checksum: ``algo:hex``, bare hex or
            the URL of a checksum file; None to verify nothing beyond what
            the source declares.
        :param checksum_algo: the algorithm of a bare-hex ``checksum``.
        :returns: the checksum the transfer verified, ``algo:hex``, or
            None when it verified none.
        :raises: ImageRefValidationFailed, ImageDownloadFailed,
            ImageChecksumError
        """

    # -- What a driver may do; the defaults know nothing more -------------

    def resolve(self, image_href: str, cpu_arch: typing.Optional[str] = None
                ) -> ResolvedImage:
        """Name the one specific image a reference stands for today.

        The default: the href itself, whose content may change.

        :param image_href: the image reference (an OCI tag, say).
        :param cpu_arch: the architecture to choose when the reference
            names several (an OCI index), or None for any.
        :returns: a :class:`ResolvedImage`.
        :raises: what :meth:`show` raises; ImageNotFound when nothing
            matches ``cpu_arch``.
        """
        return ResolvedImage(image_href)

    def cache_validators(self, properties: dict) -> typing.Optional[dict]:
        """How a cached copy of a mutable image will be revalidated.

        The default: the :func:`fingerprint_of` ``show()``'s answer.

        :param properties: what :meth:`show` returned when it was fetched.
        :returns: a dict of ``etag``, ``last_modified`` and
            ``fingerprint`` (each possibly None) to record beside the copy
            and give back to :meth:`is_unchanged`; None when nothing can
            tell a new version, and the image must not be cached.
        """
        value = fingerprint_of(properties)
        if value is None:
            return None
        return {'etag': None, 'last_modified': None, 'fingerprint': value}

    def is_unchanged(self, image_href: str,
                     etag: typing.Optional[str] = None,
                     last_modified: typing.Optional[str] = None,
                     fingerprint: typing.Optional[str] = None) -> bool:
        """Tell whether an image is still the version a cache holds.

        The default compares the :func:`fingerprint_of` :meth:`show`'s
        answer.

        :param image_href: the image reference.
        :param etag: as :meth:`cache_validators` recorded it.
        :param last_modified: as :meth:`cache_validators` recorded it.
        :param fingerprint: as :meth:`cache_validators` recorded it.
        :returns: True when the source says the image did not change.
        :raises: what :meth:`show` raises.
        """
        if not fingerprint:
            return False
        properties = self.show(image_href)
        return (not properties.get('no_cache')
                and fingerprint_of(properties) == fingerprint)

    @property
    def is_auth_set_needed(self) -> bool:
        """Whether the caller must call :meth:`set_image_auth` first."""
        return False

    def set_image_auth(self, image_url: str,
                       auth_data: typing.Optional[dict]) -> None:
        """Take the credentials to present for an image.

        The default takes none: :attr:`is_auth_set_needed` is False.

        :param image_url: the image reference.
        :param auth_data: a dict with ``username`` and ``password`` (as
            :func:`ironic_images.image_service.get_image_service_auth_override`
            returns), or None.
        """

    def get(self, image_href: str) -> str:
        """Return the text of a small document, such as a checksum file.

        :param image_href: its reference.
        :returns: the text.
        :raises: OperationNotSupported, by default.
        """
        raise exception.OperationNotSupported(
            operation='get', image_href=image_href,
            reason=_('this image service does not read documents'))

    def get_image(self, image_href: str, include_locations: bool = False,
                  context=None) -> dict:
        """Return an image record, as Nova's image API has it.

        The default: :meth:`show`.

        :param image_href: the image reference.
        :param include_locations: include where the image is stored, for
            services that say (Glance).
        :param context: the request context, or None.
        :returns: a dict.
        """
        return self.show(image_href)

    def detail(self, context=None, **filters) -> list:
        """List images: only a service that keeps a catalogue can.

        :raises: OperationNotSupported, by default.
        """
        raise self._read_only('detail', filters.get('image_href'))

    def create(self, context, image_info: dict, data=None) -> dict:
        """Create an image: only a writable service can.

        :raises: OperationNotSupported, by default.
        """
        raise self._read_only('create', None)

    def update(self, context, image_id: str, image_info: dict, data=None,
               purge_props: bool = False) -> dict:
        """Change an image: only a writable service can.

        :raises: OperationNotSupported, by default.
        """
        raise self._read_only('update', image_id)

    def delete(self, context, image_id: str) -> bool:
        """Delete an image: only a writable service can.

        :raises: OperationNotSupported, by default.
        """
        raise self._read_only('delete', image_id)

    @staticmethod
    def _read_only(operation, image_href):
        return exception.OperationNotSupported(
            operation=operation, image_href=image_href,
            reason=_('its images are read-only; only Glance images can be '
                     'created, changed or deleted'))

    @property
    def transfer_verified_checksum(self) -> typing.Optional[str]:
        """The checksum verified during the last download, or None.

        Ironic's attribute; :meth:`download` also returns it.
        """
        return self._transfer_verified_checksum
