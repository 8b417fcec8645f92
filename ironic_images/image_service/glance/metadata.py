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

"""Glance v2 image JSON and the dicts of this library.

What ``show`` returns is made from Glance's JSON here, and what callers
give to ``create`` and ``update`` is turned into Glance attributes and
JSON-patch operations. What an image's JSON says about its use (an
image at all, active, its checksum) is read here too.
"""

from oslo_utils import timeutils

from ironic_images._i18n import _
from ironic_images import exception
from ironic_images.transfer import checksums

# Attributes of the Glance v2 image schema; anything else is a user
# property.
BASE_ATTRIBUTES = frozenset([
    'id', 'name', 'status', 'visibility', 'protected', 'os_hidden', 'owner',
    'tags', 'disk_format', 'container_format', 'min_disk', 'min_ram', 'size',
    'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value',
    'created_at', 'updated_at', 'direct_url', 'locations', 'file', 'schema',
    'self', 'stores'])
# Set by Glance only: never sent in a create or an update.
READ_ONLY = frozenset([
    'status', 'size', 'virtual_size', 'checksum', 'os_hash_algo',
    'os_hash_value', 'created_at', 'updated_at', 'direct_url', 'locations',
    'file', 'schema', 'self', 'stores', 'deleted', 'deleted_at',
    'properties', 'no_cache'])
# Also copied into ``properties``, where callers look for an image's format
# and checksums whatever the driver.
PROPERTY_ATTRIBUTES = ('disk_format', 'container_format', 'checksum',
                       'os_hash_algo', 'os_hash_value', 'virtual_size',
                       'visibility', 'owner')
_LOCATION_KEYS = ('direct_url', 'locations')


def _naive_utc(value):
    if not value:
        return None
    try:
        return timeutils.normalize_time(timeutils.parse_isotime(value))
    except ValueError:
        return None


def translate(image, include_locations=False):
    """Turn a Glance v2 image into what ``show`` returns.

    :param image: the image as Glance's JSON has it.
    :param include_locations: keep ``direct_url`` and ``locations``.
    :returns: the base attributes at the top level, ``created_at`` and
        ``updated_at`` as naive UTC datetimes, ``properties`` with the
        user properties and :data:`PROPERTY_ATTRIBUTES`, and ``no_cache``
        (False: an image's data never changes).
    """
    result = {key: image.get(key) for key in BASE_ATTRIBUTES
              if key not in _LOCATION_KEYS}
    result['created_at'] = _naive_utc(image.get('created_at'))
    result['updated_at'] = _naive_utc(image.get('updated_at'))
    if include_locations:
        result['direct_url'] = image.get('direct_url')
        result['locations'] = image.get('locations') or []
    properties = {key: value for key, value in image.items()
                  if key not in BASE_ATTRIBUTES}
    properties.update((key, image.get(key)) for key in PROPERTY_ATTRIBUTES)
    result['properties'] = properties
    result['no_cache'] = False
    return result


def _property_value(key, value):
    # Glance's schema types user properties as strings.
    if key in BASE_ATTRIBUTES or value is None or isinstance(value, str):
        return value
    return str(value)


def image_body(image_info):
    """Flatten a Nova-style image dict into Glance v2 attributes.

    Keys of ``properties`` become attributes; a top-level key wins over
    the same key in ``properties``. Read-only attributes are dropped.

    :param image_info: a dict: attributes and an optional ``properties``
        dict.
    :returns: the attributes to send; a None value means "remove".
    """
    flat = dict(image_info.get('properties') or {})
    flat.update((key, value) for key, value in image_info.items()
                if key != 'properties')
    return {key: _property_value(key, value) for key, value in flat.items()
            if key not in READ_ONLY}


def _pointer(key):
    return '/' + key.replace('~', '~0').replace('/', '~1')


def build_patch(current, image_info, purge_props=False):
    """The JSON patch that turns an image into ``image_info``.

    :param current: the image as Glance's JSON has it.
    :param image_info: the wanted attributes (see :func:`image_body`).
    :param purge_props: also remove user properties of ``current`` that
        ``image_info`` does not name.
    :returns: a list of JSON-patch operations, empty when nothing changes.
    """
    wanted = image_body(image_info)
    wanted.pop('id', None)
    patch = []
    for key, value in sorted(wanted.items()):
        present = key in current
        if value is None and key not in BASE_ATTRIBUTES:
            if present:
                patch.append({'op': 'remove', 'path': _pointer(key)})
        elif not present:
            patch.append({'op': 'add', 'path': _pointer(key),
                          'value': value})
        elif current[key] != value:
            patch.append({'op': 'replace', 'path': _pointer(key),
                          'value': value})
    if purge_props:
        patch.extend({'op': 'remove', 'path': _pointer(key)}
                     for key in sorted(current)
                     if key not in BASE_ATTRIBUTES and key not in wanted)
    return patch


def checked_image(body, image_href,
                  error_class=exception.ImageRefValidationFailed):
    """Check that Glance answered with an image: a dict with an id.

    :param body: the decoded JSON of Glance's answer.
    :param image_href: the image, for the message.
    :param error_class: the exception to raise.
    :returns: ``body``.
    :raises: ``error_class`` when it is not an image.
    """
    if not (isinstance(body, dict) and isinstance(body.get('id'), str)):
        raise error_class(
            image_href=image_href,
            reason=_('Glance answered with a %s that is not an image')
            % type(body).__name__)
    return body


def require_active(image, image_href):
    """Refuse an image whose data cannot be used.

    :param image: the image as Glance's JSON has it.
    :param image_href: the image, for the message.
    :raises: ImageUnacceptable unless its status is ``active``.
    """
    status = image.get('status')
    if status != 'active':
        raise exception.ImageUnacceptable(
            image_href=image_href,
            reason=_('its status is %s, not active') % status)


def own_checksum(image, image_href):
    """The checksum Glance holds for an image's data.

    :param image: the image as Glance's JSON has it.
    :param image_href: the image, for messages.
    :returns: a :class:`~ironic_images.checksum_utils.Checksum` of its
        multihash, else of its md5 ``checksum``; None when it has neither.
    :raises: ImageChecksumAlgorithmFailure for an algorithm that is not
        supported (md5 when [DEFAULT]allow_md5_checksum is False);
        InvalidChecksum for a malformed value.
    """
    if image.get('os_hash_algo') and image.get('os_hash_value'):
        return checksums.parse_checksum(
            image['os_hash_value'], image['os_hash_algo'], image_href)
    if image.get('checksum'):
        return checksums.parse_checksum(image['checksum'], 'md5',
                                        image_href)
    return None
