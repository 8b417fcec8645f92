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

"""The Glance image service: bare image UUIDs and ``glance://`` hrefs.

Requests go through :mod:`ironic_images.image_service.glance.client`
(keystoneauth1, retries, error mapping); image data goes through the
transfer pipeline, verified against the image's own ``os_hash_value``.
"""

import os
import urllib.parse
import uuid

from oslo_log import log as logging
from oslo_utils import uuidutils

from ironic_images._i18n import _
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.image_service import base
from ironic_images.image_service import checksum_files
from ironic_images.image_service import file as file_service
from ironic_images.image_service.glance import client as glance_client
from ironic_images.image_service.glance import metadata as glance_metadata
from ironic_images.transfer import file_writer
from ironic_images.transfer import pipeline
from ironic_images.transfer import resumable

LOG = logging.getLogger(__name__)

SCHEME = 'glance'


def parse_image_id(image_href):
    """Return the image UUID of a Glance href.

    The host of ``glance://host:port/UUID`` is accepted and ignored: the
    endpoint always comes from the [glance] options, so an href can never
    send a token to a host of its choosing.

    :param image_href: a bare UUID, ``glance://UUID`` or
        ``glance://host:port/UUID``.
    :returns: the UUID in its canonical form.
    :raises: ImageRefValidationFailed for anything else.
    """
    href = str(image_href).strip()
    candidate = href
    if not uuidutils.is_uuid_like(href):
        parts = urllib.parse.urlsplit(href)
        segments = [s for s in [parts.netloc] + parts.path.split('/') if s]
        if (parts.scheme.lower() != SCHEME or parts.query or parts.fragment
                or not 1 <= len(segments) <= 2):
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('a Glance href is an image UUID, glance://UUID or '
                         'glance://host:port/UUID'))
        candidate = segments[-1]
    if not uuidutils.is_uuid_like(candidate):
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('%s is not an image UUID') % candidate)
    return str(uuid.UUID(candidate))


class _NoLink:
    """A view of a file object without its name.

    The file driver hardlinks into a named destination; a link into
    Glance's store would let a writer of the copy change the stored image
    behind Glance's checksum, so the copy must be a copy.
    """

    def __init__(self, image_file):
        self._file = image_file

    def __getattr__(self, name):
        if name == 'name':
            raise AttributeError(name)
        return getattr(self._file, name)


class GlanceImageService(base.BaseImageService):
    """Images in Glance, through the Glance v2 API.

    :param client: a preconfigured keystoneauth
        :class:`~keystoneauth1.adapter.Adapter`, or None to build one from
        the [glance] options.
    :param context: an :class:`oslo_context.context.RequestContext` whose
        ``auth_token`` is used when set; otherwise the service's own
        [glance] auth.
    """

    reports_progress = True

    def __init__(self, client=None, context=None):
        super().__init__(client=client, context=context)
        self._glance = glance_client.GlanceClient(client, context)

    def _client(self, context):
        if context is None or context is self.context:
            return self._glance
        return glance_client.GlanceClient(self.client, context)

    def _image(self, image_href, context=None,
               error_class=exception.ImageRefValidationFailed):
        image_id = parse_image_id(image_href)
        return glance_metadata.checked_image(self._client(context).json(
            'GET', '/v2/images/%s' % image_id, image_href,
            error_class=error_class), image_href, error_class)

    def validate_href(self, image_href):
        """Check that an image exists and is active; same as :meth:`show`.

        :param image_href: a UUID or ``glance://`` href.
        :returns: what :meth:`show` returns.
        :raises: as :meth:`show`.
        """
        return self.show(image_href)

    def show(self, image_href):
        """Return the properties of an active image.

        :param image_href: a UUID or ``glance://`` href.
        :returns: see
            :func:`ironic_images.image_service.glance.metadata.translate`;
            ``size``, ``updated_at`` (naive UTC) and ``properties`` among
            them.
        :raises: ImageRefValidationFailed, ImageNotFound,
            ImageNotAuthorized, ImageUnacceptable when the image is not
            active; ImageRefUnavailable or ImageRefRateLimited
            (TemporaryFailures that are also ImageRefValidationFailed)
            when Glance stays unreachable or busy.
        """
        try:
            image = self._image(image_href)
        except exception.TemporaryFailure as error:
            raise exception.validation_failure(error) from None
        glance_metadata.require_active(image, image_href)
        return glance_metadata.translate(image)

    def resolve(self, image_href, cpu_arch=None):
        """Name an image: its id, whose data never changes.

        Glance is asked (:meth:`show`, as the caller) every time: an
        image can be deleted or deactivated, and a caller may not be
        allowed to see it, even when its data is cached.

        :param image_href: a UUID or ``glance://`` href.
        :param cpu_arch: unused.
        :returns: a :class:`~ironic_images.image_service.base.ResolvedImage`
            keyed ``glance-<id>``.
        :raises: as :meth:`show`.
        """
        properties = self.show(image_href)
        return base.ResolvedImage(image_href, properties,
                                  'glance-' + parse_image_id(image_href))

    def get_image(self, image_href, include_locations=False, context=None):
        """Return the properties of an image, whatever its status.

        :param image_href: a UUID or ``glance://`` href.
        :param include_locations: include ``direct_url`` and
            ``locations`` (when Glance shows them).
        :param context: a request context, or None for the service's.
        :returns: see
            :func:`ironic_images.image_service.glance.metadata.translate`.
        :raises: as :meth:`show`, but never for the status.
        """
        return glance_metadata.translate(self._image(image_href, context),
                                         include_locations)

    def detail(self, context=None, **filters):
        """List images, following Glance's ``next`` links.

        :param context: a request context, or None for the service's.
        :param filters: Glance list filters (``status``, ``name``,
            ``visibility``, ``tag``, ``owner``, a user property...),
            ``marker``, ``sort_key``, ``sort_dir``, ``sort``; a ``filters``
            dict of more of them; ``limit``: the most images returned;
            ``page_size``: images asked for per request.
        :returns: a list of dicts as :meth:`get_image` returns.
        :raises: ImageNotAuthorized, ImageRefValidationFailed,
            TemporaryFailure.
        """
        client = self._client(context)
        params = dict(filters.pop('filters', None) or {})
        params.update(filters)
        limit = params.pop('limit', None)
        page_size = params.pop('page_size', None)
        if page_size:
            params['limit'] = page_size
        images, path, seen = [], '/v2/images', set()
        while path and path not in seen:
            seen.add(path)
            body = client.json('GET', path, 'glance://',
                               params=params if len(seen) == 1 else None)
            if not isinstance(body, dict) or not isinstance(
                    body.get('images'), list):
                raise exception.ImageRefValidationFailed(
                    image_href='glance://',
                    reason=_('Glance answered a list without "images"'))
            for image in body['images']:
                if limit is not None and len(images) >= int(limit):
                    return images
                images.append(glance_metadata.translate(
                    glance_metadata.checked_image(image, 'glance://')))
            path = body.get('next')
        return images

    def create(self, context, image_info, data=None):
        """Create an image, and upload its data when given.

        :param context: a request context, or None for the service's.
        :param image_info: attributes and ``properties`` (see
            :func:`ironic_images.image_service.glance.metadata.image_body`);
            ``id`` may be given.
        :param data: None, bytes, a binary file object or an iterator of
            bytes, streamed to ``PUT /v2/images/ID/file``. When the upload
            fails the new image is deleted.
        :returns: the new image, as :meth:`get_image` returns it.
        :raises: ImageRefValidationFailed for an invalid request (an ``id``
            that is taken among them), ImageNotAuthorized,
            TemporaryFailure.
        """
        client = self._client(context)
        body = {key: value for key, value
                in glance_metadata.image_body(image_info).items()
                if value is not None}
        # The POST is retried: were its answer lost after Glance made the
        # image, a retry without an id would make a second one. With the
        # id chosen here the retry is answered 409, and the image is ours.
        chosen = 'id' not in body
        if chosen:
            body['id'] = uuidutils.generate_uuid()
        try:
            image = client.json('POST', '/v2/images', 'glance://',
                                json=body)
        except exception.ImageRefValidationFailed as error:
            if not (chosen and error.code == 409):
                raise
            image = client.json('GET', '/v2/images/%s' % body['id'],
                                body['id'])
        image = glance_metadata.checked_image(image, 'glance://')
        if data is not None:
            try:
                image = self._upload(client, image['id'], data)
            except exception.IronicImagesException:
                # The caller never learns the new image's id: do not leave
                # it behind, queued and without data.
                self._delete_quietly(client, image['id'])
                raise
        return glance_metadata.translate(image)

    def _delete_quietly(self, client, image_id):
        try:
            client.request('DELETE', '/v2/images/%s' % image_id, image_id,
                           retries=0)
        except exception.IronicImagesException as error:
            LOG.warning('Could not delete image %(id)s after its upload '
                        'failed: %(error)s', {'id': image_id,
                                              'error': error})

    def update(self, context, image_id, image_info, data=None,
               purge_props=False):
        """Change an image's attributes with a JSON patch, upload data.

        :param context: a request context, or None for the service's.
        :param image_id: a UUID or ``glance://`` href.
        :param image_info: the attributes to set (see
            :func:`ironic_images.image_service.glance.metadata.image_body`);
            a None value removes a user property.
        :param data: image data to upload (see :meth:`create`), or None.
        :param purge_props: remove user properties not in ``image_info``.
        :returns: the image, as :meth:`get_image` returns it.
        :raises: ImageNotFound, ImageRefValidationFailed, ImageNotAuthorized,
            TemporaryFailure.
        """
        client = self._client(context)
        uuid_ = parse_image_id(image_id)
        image = self._image(uuid_, context)
        patch = glance_metadata.build_patch(image, image_info, purge_props)
        if patch:
            image = glance_metadata.checked_image(client.json(
                'PATCH', '/v2/images/%s' % uuid_, image_id, json=patch,
                headers={'Content-Type': glance_client.JSON_PATCH}),
                image_id)
        if data is not None:
            image = self._upload(client, uuid_, data, image_id)
        return glance_metadata.translate(image)

    def delete(self, context, image_id):
        """Delete an image.

        :param context: a request context, or None for the service's.
        :param image_id: a UUID or ``glance://`` href.
        :returns: True.
        :raises: ImageNotFound, ImageNotAuthorized, TemporaryFailure.
        """
        uuid_ = parse_image_id(image_id)
        self._client(context).request('DELETE', '/v2/images/%s' % uuid_,
                                      image_id)
        return True

    def _upload(self, client, image_id, data, image_href=None):
        image_href = image_href or image_id
        # A stream cannot be sent twice: one attempt.
        client.request('PUT', '/v2/images/%s/file' % image_id, image_href,
                       retries=0, data=data,
                       headers={'Content-Type': 'application/octet-stream'})
        return glance_metadata.checked_image(client.json(
            'GET', '/v2/images/%s' % image_id, image_href), image_href)

    def download(self, image_href, image_file, checksum=None,
                 checksum_algo=None, progress=None):
        """Stream an active image's data into a file object, verified.

        The data is verified against the image's ``os_hash_value`` (its
        md5 ``checksum`` only when it has no multihash, and only when
        [DEFAULT]allow_md5_checksum permits), and against ``checksum``
        when one is given. A ``file://`` direct_url is copied directly
        when [glance]allowed_direct_url_schemes has ``file`` and the path
        passes the file driver's checks; otherwise the API is used.

        :param image_href: a UUID or ``glance://`` href.
        :param image_file: a binary file object opened for writing.
        :param checksum: an extra expected checksum, or None.
        :param checksum_algo: the algorithm of a bare-hex ``checksum``.
        :param progress: ``progress(done, total)`` callback, or None.
        :returns: the checksum verified, ``algo:hex``, or None.
        :raises: ImageNotFound, ImageNotAuthorized, ImageUnacceptable (not
            active), ImageDownloadFailed (no data, a short or failed
            transfer), ImageChecksumError, ImageChecksumAlgorithmFailure,
            TemporaryFailure.
        """
        self._transfer_verified_checksum = None
        image = self._image(image_href,
                            error_class=exception.ImageDownloadFailed)
        glance_metadata.require_active(image, image_href)
        size = image.get('size')
        if size == 0:
            raise exception.ImageDownloadFailed(
                image_href=image_href, reason=_('the image has no data'))
        own = glance_metadata.own_checksum(image, image_href)
        extra = checksum_files.resolve_checksum(checksum, checksum_algo,
                                                image_href)
        expected = [c for c in (own, extra) if c is not None]
        if extra is not None and own is not None and extra == own:
            expected = [own]
        # The file driver verifies one checksum: with two, use the API.
        if not (len(expected) < 2 and self._copy_direct(
                image, image_file, expected, progress, image_href)):
            self._stream(image, image_file, expected, size, progress,
                         image_href)
        if expected:
            self._transfer_verified_checksum = str(expected[0])
        else:
            LOG.warning('Image %s has no checksum in Glance; only its size '
                        'was verified', image_href)
        return self._transfer_verified_checksum

    def _stream(self, image, image_file, expected, size, progress,
                image_href):
        client = self._glance
        path = '/v2/images/%s/file' % image['id']
        response = client.request(
            'GET', path, image_href, stream=True,
            error_class=exception.ImageDownloadFailed,
            headers={'Accept': '*/*', 'Accept-Encoding': 'identity'})
        if response.status_code == 204:
            response.close()
            raise exception.ImageDownloadFailed(
                image_href=image_href, reason=_('the image has no data'))
        if not resumable.validator(response) and expected:
            # Glance sends no validator, but an image's data never
            # changes: its checksum identifies the bytes to resume.
            response.headers['ETag'] = '"%s"' % expected[0].value
        source = resumable.ResumableResponse(
            response, lambda headers: client.reopen(path, image_href,
                                                    headers),
            image_href)
        hashers = [pipeline.Hasher(c.algorithm) for c in expected]
        try:
            result = pipeline.stream(source, hashers + [file_writer.FileWriter(
                image_file)], image_href, expected_size=size,
                progress=progress)
        finally:
            source.close()
        if not result.size:
            raise exception.ImageDownloadFailed(
                image_href=image_href, reason=_('the image has no data'))
        for checksum_, hasher in zip(expected, hashers):
            checksum_.verify(hasher.hexdigest(), image_href)

    def _copy_direct(self, image, image_file, expected, progress,
                     image_href):
        """Copy a file:// location with the file driver; False if none.

        A location the file driver refuses (outside [file]allowed_paths,
        missing) is skipped with a warning: the API serves the same bytes.
        """
        if 'file' not in [s.lower() for s in
                          CONF.glance.allowed_direct_url_schemes]:
            return False
        urls = [image.get('direct_url')] + [
            location.get('url') for location in image.get('locations') or []
            if isinstance(location, dict)]
        for url in urls:
            if not (isinstance(url, str)
                    and url.lower().startswith('file://')):
                continue
            service = file_service.FileImageService()
            try:
                path = service.validate_href(url)
                _check_size(path, image.get('size'), url)
            except exception.ImageRefValidationFailed as error:
                LOG.warning('Not reading %(href)s from its direct_url: '
                            '%(error)s', {'href': image_href,
                                          'error': error})
                continue
            service.download(url, _NoLink(image_file),
                             checksum=str(expected[0]) if expected else None,
                             progress=progress)
            LOG.info('Copied image %s from its file:// location',
                     image_href)
            return True
        return False


def _check_size(path, size, url):
    """Refuse a direct_url file whose size is not the image's.

    Without a checksum, the size is all that verifies a copy.
    """
    try:
        same = size is None or os.stat(path).st_size == size
    except OSError:
        same = False
    if not same:
        raise exception.ImageRefValidationFailed(
            image_href=url,
            reason=_('the file is not of the image size, %d bytes') % size)
