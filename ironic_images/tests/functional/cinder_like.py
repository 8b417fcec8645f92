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
"""An image service with the shape of Cinder's, on a real Glance.

Cinder hands ``image_utils`` a ``cinder.image.glance.GlanceImageService``:
``show(context, image_id)`` returns the base attributes at the top level,
the user properties in ``properties`` and the timestamps as aware
datetimes; ``download(context, image_id, data=None)`` writes the chunks
Glance sends to ``data`` without verifying them (or returns them);
``update(context, image_id, image_meta, data=None, purge_props=True,
store_id=None, base_image_ref=None)`` uploads ``data``; and the object has
a ``temp_images`` attribute. :class:`CinderLikeImageService` has that
shape and talks to Glance with plain ``requests``, so that the tests see
what goes through it (:attr:`~CinderLikeImageService.calls`).
"""

from oslo_utils import timeutils
import requests

#: Glance's base attributes (the image schema's), as Cinder's
#: _translate_from_glance keeps them at the top level.
BASE_ATTRIBUTES = frozenset([
    'id', 'name', 'status', 'visibility', 'protected', 'os_hidden', 'owner',
    'tags', 'disk_format', 'container_format', 'min_disk', 'min_ram', 'size',
    'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value',
    'created_at', 'updated_at', 'direct_url', 'locations', 'file', 'schema',
    'self', 'stores'])
CHUNK = 64 * 1024  # glanceclient's


class ImageNotFound(Exception):
    """Cinder's exception for a 404, raised by show and download."""


class CinderLikeImageService:
    """Cinder's GlanceImageService's methods, against one Glance.

    :param url: the Glance endpoint.
    :ivar calls: ``(method, image_id)`` of every call, in order.
    """

    def __init__(self, url):
        self.url = url
        self.temp_images = None
        self.calls = []
        self._session = requests.Session()

    def _headers(self, context):
        token = getattr(context, 'auth_token', None)
        return {'X-Auth-Token': token} if token else {}

    def show(self, context, image_id):
        self.calls.append(('show', image_id))
        resp = self._session.get('%s/v2/images/%s' % (self.url, image_id),
                                 headers=self._headers(context), timeout=60)
        if resp.status_code == 404:
            raise ImageNotFound(image_id)
        resp.raise_for_status()
        image = resp.json()
        meta = {key: value for key, value in image.items()
                if key in BASE_ATTRIBUTES and key != 'schema'}
        meta['properties'] = {key: value for key, value in image.items()
                              if key not in BASE_ATTRIBUTES}
        for key in ('created_at', 'updated_at'):
            if meta.get(key):
                meta[key] = timeutils.parse_isotime(meta[key])
        return meta

    def download(self, context, image_id, data=None):
        self.calls.append(('download', image_id))
        resp = self._session.get(
            '%s/v2/images/%s/file' % (self.url, image_id), stream=True,
            headers=self._headers(context), timeout=60)
        if resp.status_code == 404:
            raise ImageNotFound(image_id)
        resp.raise_for_status()
        chunks = resp.iter_content(CHUNK)
        if not data:
            return chunks
        for chunk in chunks:
            data.write(chunk)

    def update(self, context, image_id, image_meta, data=None,
               purge_props=True, store_id=None, base_image_ref=None):
        self.calls.append(('update', image_id))
        headers = dict(self._headers(context))
        headers['Content-Type'] = 'application/octet-stream'
        resp = self._session.put(
            '%s/v2/images/%s/file' % (self.url, image_id), data=data,
            headers=headers, timeout=120)
        resp.raise_for_status()
        return self.show(context, image_id)

    def close(self):
        self._session.close()
