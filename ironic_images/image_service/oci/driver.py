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

"""The oci:// image service: disk images stored as OCI artifacts."""

from oslo_log import log as logging

from ironic_images._i18n import _
from ironic_images.common import masking
from ironic_images import exception
from ironic_images.image_service import base
from ironic_images.image_service.oci import auth as oci_auth
from ironic_images.image_service.oci import client as oci_client
from ironic_images.image_service.oci import layer_probe
from ironic_images.image_service.oci import media_types
from ironic_images.image_service.oci import reference as oci_reference

LOG = logging.getLogger(__name__)

# The OCI data model says amd64 and arm64; operators often say otherwise.
_ARCH_ALIASES = {'x86_64': 'amd64', 'aarch64': 'arm64'}
_TITLE = 'org.opencontainers.image.title'


def _lower(value):
    return value.lower() if isinstance(value, str) else ''


def _arch(value):
    value = _lower(value)
    return _ARCH_ALIASES.get(value, value)


def _text(mapping, name, position, image_href):
    """A string field of an index entry's mapping, or None."""
    value = mapping.get(name)
    if value is not None and not isinstance(value, str):
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('%(name)s of index entry %(n)d is not a string') % {
                'name': name, 'n': position})
    return value


def _field(entry, name, kind, position, image_href):
    """A field of an index entry, of the kind it must have, or empty."""
    value = entry.get(name)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('%(name)s of index entry %(n)d is not a %(kind)s') % {
                'name': name, 'n': position, 'kind': kind.__name__})
    return value


class OciImageService(base.BaseImageService):
    """Disk images in OCI container registries.

    Downloading needs a digest URL (``oci://host/name@sha256:...``) of an
    artifact manifest with one layer; :meth:`identify_specific_image`
    turns a tag or an index into one.
    """

    reports_progress = True

    def __init__(self, client=None, context=None):
        super().__init__(client=client, context=context)
        self._client = client if isinstance(
            client, oci_client.OciClient) else None
        self._auth_set = False

    @property
    def client(self):
        """The OCI client of this service, made on first use."""
        if self._client is None:
            self._client = oci_client.OciClient()
        return self._client

    @client.setter
    def client(self, value):
        # BaseImageService stores the constructor's client here.
        if isinstance(value, oci_client.OciClient):
            self._client = value

    @property
    def is_auth_set_needed(self):
        """True until :meth:`set_image_auth` has been called."""
        return not self._auth_set

    def set_image_auth(self, image_url, auth_data):
        """Give the credentials to use for an image's registry.

        :param image_url: the ``oci://`` URL.
        :param auth_data: a dict with ``username`` and ``password`` (as
            :func:`ironic_images.image_service.get_image_service_auth_override`
            returns; an empty user name with a password is a pull secret),
            or with ``token``; None to rely on [oci]authentication_config.
        :raises: AssertionError when called twice, since two sets of
            credentials in one workflow is a bug of the caller.
        """
        assert not self._auth_set, 'set_image_auth called twice'
        self._auth_set = True
        credentials = oci_auth.credentials_from_auth_data(auth_data)
        if credentials is not None:
            self.client.authenticate(image_url, credentials.username,
                                     credentials.password, credentials.token)

    def _artifact(self, image_href):
        """The manifest digest and the layer of a digest URL."""
        ref = oci_reference.parse_reference(image_href)
        if not ref.digest:
            raise exception.OciImageNotSpecific(
                image_href=image_href,
                reason=_('a tag may point at a different image tomorrow; '
                         'give a digest (oci://host/name@sha256:...), or '
                         'resolve the tag with identify_specific_image'))
        manifest = self.client.get_manifest(image_href)
        return ref, oci_client.single_layer(manifest, image_href)

    def validate_href(self, image_href, secret=None):
        """Validate an oci:// digest URL; the same as :meth:`show`.

        :param image_href: ``oci://host/name@sha256:...``.
        :param secret: unused; for API compatibility.
        :returns: what :meth:`show` returns.
        :raises: as :meth:`show`.
        """
        return self.show(image_href)

    def show(self, image_href):
        """Return the properties of the artifact a digest URL names.

        :param image_href: ``oci://host/name@sha256:...`` of a manifest.
        :returns: ``size``, ``checksum`` (hex of the layer digest),
            ``digest``, ``media_type``, ``compression`` and
            ``disk_format`` (what the media type and file name say, or
            None), ``filename``, ``updated_at``
            (None: registries do not say), ``properties`` (the layer's
            annotations) and ``no_cache`` (False: digests never change).
        :raises: OciImageNotSpecific for a tag or an index;
            ImageRefValidationFailed, ImageNotFound,
            ImageServiceAuthenticationRequired; ImageRefUnavailable or
            ImageRefRateLimited (TemporaryFailures that are also
            ImageRefValidationFailed) when 5xx or 429 persist.
        """
        try:
            _ref, layer = self._artifact(image_href)
        except exception.TemporaryFailure as error:
            raise exception.validation_failure(error) from None
        return _properties(layer)

    def resolve(self, image_href, cpu_arch=None):
        """Resolve a tag or an index to one artifact, named by its digest.

        :param image_href: ``oci://`` URL with a tag or digest.
        :param cpu_arch: the architecture to pick from an index, or None.
        :returns: a :class:`~ironic_images.image_service.base.ResolvedImage`
            of the artifact's manifest URL, keyed by its layer digest.
        :raises: ImageNotFound when no artifact matches ``cpu_arch``; as
            :meth:`identify_specific_image`.
        """
        selected = self._select(image_href, None, cpu_arch)
        if selected is None:
            raise exception.ImageNotFound(
                image_href=image_href,
                reason=_('no artifact matches architecture %s')
                % (cpu_arch or _('any')))
        manifest_url, layer, _disktype = selected
        return base.ResolvedImage(manifest_url, _properties(layer),
                                  'oci-' + layer['digest'])

    def _select(self, image_href, image_download_source, cpu_arch):
        """The manifest URL, layer and disktype of the artifact to use."""
        ref = oci_reference.parse_reference(image_href)
        manifest, digest = self.client.get_manifest_and_digest(image_href)
        disktype = None
        if manifest.get('mediaType') in oci_client.INDEX_TYPES:
            entry = _choose(manifest, image_download_source, cpu_arch,
                            image_href)
            if entry is None:
                return None
            digest = entry['digest']
            disktype = (entry.get('annotations') or {}).get('disktype')
            disktype = disktype if isinstance(disktype, str) else None
            manifest = self.client.get_manifest(ref.url(digest))
        layer = oci_client.single_layer(manifest, image_href)
        return ref.url(digest), layer, disktype

    def download(self, image_href, image_file, checksum=None,
                 checksum_algo=None, progress=None):
        """Download the artifact of a digest URL, verifying its digest.

        :param image_href: ``oci://host/name@sha256:...`` of a manifest.
        :param image_file: a binary file object opened for writing.
        :param checksum: ignored: the layer digest is always verified.
        :param checksum_algo: ignored.
        :param progress: ``progress(done, total)`` callback, or None.
        :returns: the layer digest verified, ``algo:hex``.
        :raises: OciImageNotSpecific, ImageChecksumError,
            ImageDownloadFailed, ImageNotFound, TemporaryFailure.
        """
        self._transfer_verified_checksum = None
        _ref, layer = self._artifact(image_href)
        digest = self.client.download_blob(image_href, layer['digest'],
                                           image_file,
                                           size=layer.get('size'),
                                           progress=progress)
        self._transfer_verified_checksum = digest
        return digest

    def identify_specific_image(self, image_href, image_download_source=None,
                                cpu_arch=None):
        """Resolve a tag or digest URL to one downloadable artifact.

        Index entries are filtered by architecture (x86_64 and amd64,
        aarch64 and arm64 are the same; entries without a platform pass)
        and ranked by their ``disktype`` annotation: raw first, or qcow2
        first when ``image_download_source`` is ``local``.

        The compression comes from the layer's media type (OCI, docker,
        oras, ``application/zstd``...) or its file name; the disk format
        from the ``disktype`` annotation or the file name. When neither
        tells the disk format (skopeo drops the annotations, docker never
        writes them), the first bytes of the layer are inspected: the
        compression, a tar archive around the disk (a container layer)
        and the disk's format and name in it.

        :param image_href: ``oci://`` URL with a tag or digest.
        :param image_download_source: Ironic's image_download_source.
        :param cpu_arch: the node's CPU architecture, or None.
        :returns: a dict with Ironic's ``image_url``, ``image_size``,
            ``image_filename``, ``image_checksum``,
            ``image_container_blob_digest``, ``image_media_type``,
            ``image_compression_type``, ``image_disk_format``,
            ``image_request_authorization_secret`` and
            ``oci_image_manifest_url``; also ``image_archive_format``
            (``tar`` when the disk is inside a tar archive in the layer,
            else None) and ``image_info_sources``, which says where each
            of ``image_filename``, ``image_compression_type``,
            ``image_disk_format`` and ``image_archive_format`` came from
            (``annotation``, ``media_type``, ``filename`` or
            ``inspection``; None when unknown). ``{}`` when nothing
            matches.
        :raises: ImageNotFound, OciImageTagNotFound,
            ImageRefValidationFailed, ImageServiceAuthenticationRequired.
        """
        selected = self._select(image_href, image_download_source, cpu_arch)
        if selected is None:
            return {}
        manifest_url, layer, disktype = selected
        facts = self._layer_facts(manifest_url, layer, disktype)
        return {
            'image_url': self.client.get_blob_url(image_href,
                                                  layer['digest']),
            'image_size': layer.get('size'),
            'image_filename': facts['image_filename'].value,
            'image_checksum': layer['digest'].partition(':')[2],
            'image_container_blob_digest': layer['digest'],
            'image_media_type': layer.get('mediaType'),
            'image_compression_type': facts['image_compression_type'].value,
            'image_disk_format': facts['image_disk_format'].value,
            'image_archive_format': facts['image_archive_format'].value,
            'image_info_sources': {key: found.source
                                   for key, found in facts.items()},
            'image_request_authorization_secret':
                self.client.get_cached_auth(image_href),
            'oci_image_manifest_url': manifest_url,
        }

    def _layer_facts(self, manifest_url, layer, disktype):
        """File name, compression, disk format and archive of a layer."""
        found = media_types.Found
        filename = (layer.get('annotations') or {}).get(_TITLE)
        facts = {
            'image_filename': found(filename, 'annotation' if filename
                                    else None),
            'image_compression_type': media_types.compression(
                layer.get('mediaType'), filename),
            'image_disk_format': found(),
            'image_archive_format': found(),
        }
        if disktype:
            facts['image_disk_format'] = found(disktype.lower(),
                                               'annotation')
        elif media_types.disk_format_of_name(filename):
            facts['image_disk_format'] = found(
                media_types.disk_format_of_name(filename), 'filename')
        else:
            self._inspect_layer(manifest_url, layer, facts)
        return facts

    def _inspect_layer(self, manifest_url, layer, facts):
        """Fill what the labels did not say from the head of the blob."""
        size = layer.get('size')
        length = layer_probe.HEAD_BYTES
        if isinstance(size, int) and 0 <= size < length:
            length = size
        try:
            head = (self.client.read_blob_head(manifest_url, layer['digest'],
                                               length) if length else b'')
        except exception.IronicImagesException as error:
            LOG.warning('Cannot look at the first bytes of %(href)s to tell '
                        'its disk format: %(error)s',
                        {'href': masking.mask_href(manifest_url),
                         'error': error})
            return
        seen = layer_probe.probe(head, len(head) == size, manifest_url)
        found = media_types.Found
        if not facts['image_compression_type'].value and seen.compression:
            facts['image_compression_type'] = found(seen.compression,
                                                    'inspection')
        if seen.archive:
            facts['image_archive_format'] = found(seen.archive, 'inspection')
        named = media_types.disk_format_of_name(seen.member)
        # The bytes tell qcow2 & co for sure; raw is only "nothing else",
        # where the name of the disk in the archive may know better.
        disk_format = (seen.disk_format if seen.disk_format != 'raw'
                       else named or seen.disk_format)
        if disk_format:
            facts['image_disk_format'] = found(disk_format, 'inspection')
        if seen.member and not facts['image_filename'].value:
            facts['image_filename'] = found(seen.member.rsplit('/', 1)[-1],
                                            'inspection')


def _choose(index, image_download_source, cpu_arch, image_href):
    """The best manifest entry of an index, or None."""
    entries = index.get('manifests')
    if not isinstance(entries, list):
        raise exception.ImageRefValidationFailed(
            image_href=image_href, reason=_('the index has no manifests'))
    wanted_arch = _arch(cpu_arch)
    preferred = (('qcow2', 'raw') if image_download_source == 'local'
                 else ('raw', 'qcow2'))
    candidates = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or 'digest' not in entry:
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('index entry %d has no digest') % position)
        platform = _field(entry, 'platform', dict, position, image_href)
        annotations = _field(entry, 'annotations', dict, position,
                             image_href)
        architecture = _arch(_text(platform, 'architecture', position,
                                   image_href))
        if wanted_arch and architecture and architecture != wanted_arch:
            continue
        disktype = _lower(_text(annotations, 'disktype', position,
                                image_href))
        rank = (preferred.index(disktype) if disktype in preferred
                else len(preferred))
        candidates.append((rank, position, entry))
    if not candidates:
        LOG.info('No manifest of %(href)s is for architecture %(arch)s',
                 {'href': image_href, 'arch': wanted_arch})
        return None
    return min(candidates, key=lambda item: item[:2])[2]


def _properties(layer):
    """What :meth:`OciImageService.show` says of an artifact's layer."""
    annotations = layer.get('annotations') or {}
    filename = annotations.get(_TITLE)
    return {
        'size': layer.get('size'),
        'checksum': layer['digest'].partition(':')[2],
        'digest': layer['digest'],
        'media_type': layer.get('mediaType'),
        'compression': media_types.compression(layer.get('mediaType'),
                                               filename).value,
        'disk_format': media_types.disk_format_of_name(filename),
        'filename': filename,
        'updated_at': None,
        'properties': dict(annotations),
        'no_cache': False,
    }
