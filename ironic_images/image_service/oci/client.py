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

"""A client of the OCI distribution protocol: tags, manifests, blobs.

URLs have the form ``oci://host[:port]/path/name[:tag|@sha256:HEX]``; no
tag means ``latest``. How requests reach a registry (HTTPS or plain HTTP,
mirrors first, auth challenges, redirects) is
:mod:`ironic_images.image_service.oci.session`'s job.
"""

import hashlib
import time
import urllib.parse

from oslo_log import log as logging

from ironic_images._i18n import _
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.image_service.oci import auth as oci_auth
from ironic_images.image_service.oci import reference as oci_reference
from ironic_images.image_service.oci import schema as oci_schema
from ironic_images.image_service.oci import session as oci_session
from ironic_images.transfer import bodies
from ironic_images.transfer import checksums
from ironic_images.transfer import file_writer
from ironic_images.transfer import http_client
from ironic_images.transfer import pipeline
from ironic_images.transfer import resumable

LOG = logging.getLogger(__name__)

INDEX_TYPE = 'application/vnd.oci.image.index.v1+json'
MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json'
DOCKER_LIST_TYPE = 'application/vnd.docker.distribution.manifest.list.v2+json'
DOCKER_MANIFEST_TYPE = 'application/vnd.docker.distribution.manifest.v2+json'
INDEX_TYPES = (INDEX_TYPE, DOCKER_LIST_TYPE)
MANIFEST_TYPES = (MANIFEST_TYPE, DOCKER_MANIFEST_TYPE)
MANIFEST_ACCEPT = ', '.join((INDEX_TYPE, MANIFEST_TYPE, DOCKER_LIST_TYPE,
                             DOCKER_MANIFEST_TYPE))
_MAX_TAG_PAGES = 100
# Tags named in the message of a missing tag.
_TAGS_NAMED = 20


class _TagListTooLarge(exception.ImageRefValidationFailed):
    """A tag list over its cap (a registry that streams forever)."""


class OciClient:
    """A client of one or more OCI registries.

    :param verify: TLS verification (True, False or a CA bundle path);
        default [oci]verify_ca, or [DEFAULT]webserver_verify_ca when
        that is unset.
    """

    def __init__(self, verify=None):
        if verify is None:
            if CONF.oci.verify_ca is None:
                verify = http_client.verify_setting(CONF.webserver_verify_ca)
            else:
                verify = http_client.verify_setting(CONF.oci.verify_ca,
                                                    '[oci]verify_ca')
        self.registry = oci_session.RegistrySession(verify)

    @property
    def session(self):
        """The ``requests.Session`` every request goes through."""
        return self.registry.session

    @property
    def verify(self):
        """TLS verification: True, False or a CA bundle path."""
        return self.registry.verify

    # Authentication

    def authenticate(self, image_url, username=None, password=None,
                     token=None):
        """Set the credentials used for the registry of an image.

        Nothing is sent until a request needs it; the registry's challenge
        then says whether Basic or a Bearer token is wanted.

        :param image_url: an ``oci://`` URL of the registry.
        :param username: a user name, with ``password``.
        :param password: a password, or a pull secret when ``username``
            is empty (see
            :func:`ironic_images.image_service.oci.auth.decode_secret`).
        :param token: a registry token to present as Bearer.
        :raises: ImageRefValidationFailed for a malformed URL.
        """
        host = oci_reference.parse_reference(image_url).host
        if token:
            credentials = oci_auth.Credentials(None, None, token)
        else:
            credentials = oci_auth.credentials_from_auth_data(
                {'username': username, 'password': password})
        self.registry.set_credentials(host, credentials)

    def get_cached_auth(self, image_url):
        """The ``Authorization`` value last used for an image's repository.

        :param image_url: an ``oci://`` URL.
        :returns: e.g. ``Bearer TOKEN``, or None when none was needed.
        """
        ref = oci_reference.parse_reference(image_url)
        return self.registry.authorization(ref.host, ref.repository)

    # Tags, indexes and manifests

    def get_tags(self, image_url):
        """List the tags of an image's repository, following pagination.

        At most 100 pages are read, each of at most
        :data:`~ironic_images.transfer.bodies.TAG_LIST_PAGE` bytes and
        :data:`~ironic_images.transfer.bodies.TAG_LIST_TOTAL` in all.

        :param image_url: an ``oci://`` URL.
        :returns: the list of tags.
        :raises: ImageNotFound, ImageServiceAuthenticationRequired,
            ImageRefValidationFailed for a malformed or too large answer,
            TemporaryFailure.
        """
        ref = oci_reference.parse_reference(image_url)
        tags = []
        for page in self._tag_pages(ref, image_url, _MAX_TAG_PAGES,
                                    bodies.TAG_LIST_PAGE,
                                    bodies.TAG_LIST_TOTAL):
            tags.extend(page)
        return tags

    def _tag_pages(self, ref, image_url, max_pages, page_cap, total_cap,
                   first_page_size=None):
        """The pages of a tag list, each a list of tags, read bounded."""
        path = '/v2/%s/tags/list' % ref.repository
        if first_page_size:
            path += '?n=%d' % first_page_size
        total = 0
        for _page in range(max_pages):
            response = self.registry.request(ref, path, image_url,
                                             stream=True)
            oci_session.check_status(response, image_url, _('tag list'))
            data = bodies.read_capped(response, min(page_cap,
                                                    total_cap - total),
                                      image_url, _('tag list'),
                                      error_class=_TagListTooLarge)
            total += len(data)
            body = oci_session.parse_json(data, image_url, _('tag list'))
            page = body.get('tags') if isinstance(body, dict) else []
            if (not isinstance(body, dict) or (page is not None and (
                    not isinstance(page, list)
                    or not all(isinstance(tag, str) for tag in page)))):
                raise exception.ImageRefValidationFailed(
                    image_href=image_url,
                    reason=_('the tag list is not an object with a list of '
                             'tag names'))
            yield page or []
            next_url = response.links.get('next', {}).get('url')
            if not next_url:
                return
            try:
                parts = urllib.parse.urlsplit(
                    urllib.parse.urljoin(response.url, next_url))
            except ValueError:
                raise exception.ImageRefValidationFailed(
                    image_href=image_url,
                    reason=_('the tag list links to a malformed next page'))
            path = parts.path + ('?' + parts.query if parts.query else '')

    def _manifest(self, ref, image_href, accept=MANIFEST_ACCEPT):
        """The bytes, parsed body and digest of a manifest or index."""
        path = '/v2/%s/manifests/%s' % (ref.repository, ref.reference)
        retries = CONF.download.retries
        for attempt in range(retries + 1):
            response = self.registry.request(
                ref, path, image_href, headers={'Accept': accept},
                stream=True)
            if response.status_code == 404 and not ref.digest:
                raise self._tag_not_found(ref, image_href, response)
            oci_session.check_status(response, image_href, _('manifest'))
            try:
                body = bodies.read_capped(response, bodies.MANIFEST,
                                          image_href, _('manifest'))
                break
            except exception.ImageDownloadFailed as error:
                # The connection broke while the manifest was read.
                if attempt == retries:
                    raise
                LOG.warning('Reading the manifest of %(href)s failed '
                            '(%(reason)s); retrying',
                            {'href': masking.mask_href(image_href),
                             'reason': error.kwargs.get('reason')})
                time.sleep(http_client.backoff(attempt + 1))
        if ref.digest:
            algorithm, _sep, value = ref.digest.partition(':')
            checksums.Checksum(algorithm, value).verify(
                hashlib.new(algorithm, body).hexdigest(), image_href)
            digest = ref.digest
        else:
            digest = 'sha256:' + hashlib.sha256(body).hexdigest()
        manifest = oci_session.parse_json(body, image_href, _('manifest'))
        if not isinstance(manifest, dict):
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('the manifest is not a JSON object'))
        media_type = manifest.get('mediaType')
        if media_type is None:
            media_type = response.headers.get(
                'Content-Type', '').split(';')[0].strip()
        # Before any field is used: a type a field must not have would
        # otherwise escape as a TypeError far from here.
        oci_schema.validate(manifest, media_type in INDEX_TYPES or (
            media_type not in MANIFEST_TYPES and 'manifests' in manifest
            and 'layers' not in manifest), image_href)
        manifest.setdefault('mediaType', media_type)
        return manifest, digest

    def _tag_not_found(self, ref, image_href, response):
        """OciImageTagNotFound for a 404, naming a few of the tags.

        The tag list is read only when the registry says the repository
        exists, and then only its first page, bounded
        (:data:`~ironic_images.transfer.bodies.TAG_LIST_HINT`): it is for
        a message.
        """
        code, _message = oci_session.registry_error(response)
        if code == 'NAME_UNKNOWN':
            tags = _('none (no such repository)')
        else:
            tags = self._tag_hint(ref)
        return exception.OciImageTagNotFound(image_href=image_href,
                                             tag=ref.tag, tags=tags)

    def _tag_hint(self, ref):
        """A few tags of a repository for a message, or ``none``."""
        try:
            page = next(self._tag_pages(
                ref, ref.url(), 1, bodies.TAG_LIST_HINT,
                bodies.TAG_LIST_HINT, first_page_size=_TAGS_NAMED + 1), [])
        except _TagListTooLarge:
            return _('too many to list')
        except exception.IronicImagesException:
            return _('none')
        shown = ', '.join(page[:_TAGS_NAMED]) or _('none')
        if len(page) > _TAGS_NAMED:
            shown += _(' and more')
        return shown

    def get_manifest(self, image_url, digest=None):
        """Fetch a manifest (or an index), verified against its digest.

        :param image_url: an ``oci://`` URL with a tag or digest.
        :param digest: a digest overriding the URL's reference.
        :returns: the manifest as a dict; its ``mediaType`` is filled in
            from Content-Type when the body does not carry it.
        :raises: ImageNotFound, OciImageTagNotFound, ImageChecksumError,
            ImageRefValidationFailed, ImageServiceAuthenticationRequired,
            TemporaryFailure, ImageHostRateLimitFailure.
        """
        ref = oci_reference.parse_reference(image_url)
        if digest:
            ref = oci_reference.parse_reference(ref.url(digest.lower()))
        return self._manifest(ref, image_url)[0]

    def get_manifest_and_digest(self, image_url):
        """Like :meth:`get_manifest`, also returning the digest.

        :returns: ``(manifest, digest)``; the digest is of the exact bytes
            received.
        """
        return self._manifest(oci_reference.parse_reference(image_url),
                              image_url)

    def get_artifact_index(self, image_url):
        """Fetch the index an image URL names.

        :param image_url: an ``oci://`` URL with a tag or digest.
        :returns: the index as a dict.
        :raises: ImageRefValidationFailed when the URL names a manifest;
            what :meth:`get_manifest` raises.
        """
        index = self.get_manifest(image_url)
        if index.get('mediaType') not in INDEX_TYPES:
            raise exception.ImageRefValidationFailed(
                image_href=image_url,
                reason=_('%s is not an index') % index.get('mediaType'))
        return index

    # Blobs

    def get_blob_url(self, image_url, blob_digest):
        """The HTTP(S) URL of a blob of an image's repository.

        :param image_url: an ``oci://`` URL.
        :param blob_digest: the blob's digest.
        :returns: ``https://host/v2/NAME/blobs/DIGEST``.
        """
        ref = oci_reference.parse_reference(image_url)
        return '%s://%s/v2/%s/blobs/%s' % (
            self.registry.scheme(ref.host), ref.host, ref.repository,
            blob_digest)

    def download_blob(self, image_url, blob_digest, image_file, size=None,
                      progress=None):
        """Download a blob into a file object, verifying its digest.

        :param image_url: an ``oci://`` URL of the repository.
        :param blob_digest: ``sha256:HEX`` or ``sha512:HEX``.
        :param image_file: a binary file object opened for writing.
        :param size: the size the manifest gives, checked when given.
        :param progress: ``progress(done, total)`` callback, or None.
        :returns: the verified digest.
        :raises: ImageChecksumError, ImageDownloadFailed, ImageNotFound,
            ImageServiceAuthenticationRequired, TemporaryFailure.
        """
        ref = oci_reference.parse_reference(image_url)
        if not oci_reference.DIGEST.match(blob_digest or ''):
            raise exception.ImageRefValidationFailed(
                image_href=image_url,
                reason=_('%s is not a sha256 or sha512 digest') % blob_digest)
        href = ref.url(blob_digest)
        algorithm, _sep, value = blob_digest.partition(':')
        expected = checksums.Checksum(algorithm, value)
        response = self.registry.open_blob(ref, blob_digest, href)
        oci_session.check_status(response, href, _('blob'))
        source = resumable.ResumableResponse(
            response, lambda headers: self.registry.open_blob(
                ref, blob_digest, href, headers),
            href)
        if size is not None and source.total not in (None, size):
            source.close()
            raise exception.ImageDownloadFailed(
                image_href=href,
                reason=_('the registry sends %(sent)s bytes, the manifest '
                         'says %(size)s') % {'sent': source.total,
                                             'size': size})
        hasher = pipeline.Hasher(algorithm)
        writer = file_writer.FileWriter(image_file)
        try:
            pipeline.stream(source, [hasher, writer],
                            href, expected_size=source.total
                            if source.total is not None else size,
                            progress=progress)
        finally:
            source.close()
        expected.verify(hasher.hexdigest(), href)
        return blob_digest

    def read_blob_head(self, image_url, blob_digest, length):
        """Read the first bytes of a blob (a Range request), unverified.

        For a look at what a layer holds when its labels do not say; the
        bytes are not checked against the digest (only a whole blob can
        be), so nothing but a guess may come of them.

        :param image_url: an ``oci://`` URL of the repository.
        :param blob_digest: the blob's digest.
        :param length: how many bytes at most.
        :returns: the bytes (fewer for a shorter blob).
        :raises: ImageNotFound, ImageDownloadFailed,
            ImageServiceAuthenticationRequired, TemporaryFailure.
        """
        ref = oci_reference.parse_reference(image_url)
        href = ref.url(blob_digest)
        response = self.registry.open_blob(
            ref, blob_digest, href,
            headers={'Range': 'bytes=0-%d' % (length - 1)})
        try:
            if response.status_code != 206:
                oci_session.check_status(response, href, _('blob'))
            return response.raw.read(length, decode_content=True)
        except resumable.DROPS as error:
            raise exception.ImageDownloadFailed(
                image_href=href, reason=masking.mask_text(
                    '%s: %s' % (type(error).__name__, error)))
        finally:
            response.close()

    def download_blob_from_manifest(self, manifest_url, image_file,
                                    progress=None):
        """Download the one layer of an artifact manifest.

        :param manifest_url: an ``oci://`` URL naming an artifact
            manifest (by digest or tag).
        :param image_file: a binary file object opened for writing.
        :param progress: ``progress(done, total)`` callback, or None.
        :returns: the verified digest of the blob.
        :raises: ImageRefValidationFailed when the manifest does not have
            exactly one layer; what :meth:`download_blob` raises.
        """
        layer = single_layer(self.get_manifest(manifest_url), manifest_url)
        return self.download_blob(manifest_url, layer['digest'], image_file,
                                  size=layer.get('size'), progress=progress)


def single_layer(manifest, image_href):
    """The one layer of an artifact manifest.

    :param manifest: the manifest dict.
    :param image_href: the href, for messages.
    :returns: the layer's descriptor dict (with ``digest``, ``size``,
        ``mediaType``, ``annotations``).
    :raises: OciImageNotSpecific for an index; ImageRefValidationFailed
        when there is not exactly one layer or it lacks a digest.
    """
    if manifest.get('mediaType') in INDEX_TYPES or 'manifests' in manifest:
        raise exception.OciImageNotSpecific(
            image_href=image_href,
            reason=_('it names an index; pick one of its manifests '
                     '(identify_specific_image does)'))
    layers = manifest.get('layers')
    if not isinstance(layers, list) or len(layers) != 1:
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('an image artifact has exactly one layer; this '
                     'manifest has %s') % (len(layers) if isinstance(
                         layers, list) else _('none')))
    layer = layers[0]
    if not isinstance(layer, dict) or not oci_reference.DIGEST.match(
            str(layer.get('digest', ''))):
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('the layer has no valid digest'))
    if not isinstance(layer.get('annotations') or {}, dict):
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('the layer annotations are not an object'))
    return layer
