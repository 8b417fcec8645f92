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

"""The shape every OCI manifest and index must have before it is used.

The rules of the OCI image-spec (image manifest, image index, content
descriptor), written as compact JSON schemas, with ours on top:

* a digest is ``sha256:`` and 64 lower-case hex digits, or ``sha512:``
  and 128: the algorithms a download can verify;
* a size is a JSON integer from 0 to 2**63 - 1 (not ``"12"``, not
  ``12.0``);
* annotation values are strings.

What real registries and tools need is kept: unknown fields are allowed
(the spec requires it), the ``mediaType`` of a manifest or index is
optional (the Content-Type says it), and so is a descriptor's and a
platform's fields. Docker schema 2 manifests and manifest lists have the
same shape and pass the same schemas.
"""

import jsonschema

from ironic_images._i18n import _
from ironic_images import exception

# Any character after the digits, even a newline that "$" lets through.
_DIGEST_PATTERN = (r'^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})'
                   r'(?![\s\S])')
_MAX_SIZE = 2 ** 63 - 1
# Enough of a value to recognise it in a message: a field may be 4 MiB.
_MAX_SHOWN = 200

_STRING = {'type': 'string'}
_STRINGS = {'type': 'array', 'items': _STRING}
_ANNOTATIONS = {'type': 'object', 'additionalProperties': _STRING}
_DESCRIPTOR_FIELDS = {
    'mediaType': _STRING,
    'artifactType': _STRING,
    'digest': {'type': 'string', 'pattern': _DIGEST_PATTERN},
    'size': {'type': 'integer', 'minimum': 0, 'maximum': _MAX_SIZE},
    'urls': _STRINGS,
    'data': _STRING,
    'annotations': _ANNOTATIONS,
}
_DESCRIPTOR = {'type': 'object', 'required': ['digest', 'size'],
               'properties': _DESCRIPTOR_FIELDS}
_PLATFORM = {'type': 'object', 'properties': {
    'architecture': _STRING, 'os': _STRING, 'os.version': _STRING,
    'os.features': _STRINGS, 'variant': _STRING, 'features': _STRINGS}}
_SCHEMA_VERSION = {'type': 'integer', 'enum': [2]}

#: An image manifest (OCI, or Docker schema 2).
MANIFEST = {
    'type': 'object',
    'required': ['schemaVersion', 'config', 'layers'],
    'properties': {
        'schemaVersion': _SCHEMA_VERSION,
        'mediaType': _STRING,
        'artifactType': _STRING,
        'config': _DESCRIPTOR,
        'subject': _DESCRIPTOR,
        # How many layers an artifact has is the client's to say, with a
        # better message than "too short".
        'layers': {'type': 'array', 'items': _DESCRIPTOR},
        'annotations': _ANNOTATIONS,
    },
}

#: An image index (OCI, or a Docker manifest list).
INDEX = {
    'type': 'object',
    'required': ['schemaVersion', 'manifests'],
    'properties': {
        'schemaVersion': _SCHEMA_VERSION,
        'mediaType': _STRING,
        'artifactType': _STRING,
        'subject': _DESCRIPTOR,
        'manifests': {'type': 'array', 'items': {
            'type': 'object', 'required': ['digest', 'size'],
            'properties': dict(_DESCRIPTOR_FIELDS, platform=_PLATFORM)}},
        'annotations': _ANNOTATIONS,
    },
}


def _is_integer(_checker, instance):
    # JSON Schema counts 12.0 as an integer, and Python counts True.
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        'integer', _is_integer))
_MANIFEST_VALIDATOR = _Validator(MANIFEST)
_INDEX_VALIDATOR = _Validator(INDEX)


def field_path(path) -> str:
    """Name a field of a document the way a person would write it.

    :param path: the keys and indexes leading to it, outermost first.
    :returns: e.g. ``layers[0].size`` or
        ``layers[0].annotations["org.opencontainers.image.title"]``;
        ``the document`` for an empty path.
    """
    text = ''
    for part in path:
        if isinstance(part, int):
            text += '[%d]' % part
        elif part.isidentifier():
            text += ('.' if text else '') + part
        else:
            text += '["%s"]' % part
    return text or _('the document')


def validate(document, is_index: bool, image_href: str) -> None:
    """Check a parsed manifest or index before any of its fields is used.

    :param document: what the registry's JSON parsed to.
    :param is_index: check it as an index (else as a manifest).
    :param image_href: the image, for messages.
    :raises: ImageRefValidationFailed naming the first field found wrong
        and why.
    """
    validator = _INDEX_VALIDATOR if is_index else _MANIFEST_VALIDATOR
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return
    message = error.message
    if len(message) > _MAX_SHOWN:
        message = message[:_MAX_SHOWN] + '...'
    raise exception.ImageRefValidationFailed(
        image_href=image_href,
        reason=_('the %(kind)s is malformed: %(field)s: %(error)s') % {
            'kind': _('index') if is_index else _('manifest'),
            'field': field_path(error.absolute_path), 'error': message})
