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

"""What a layer's media type and file name say of its bytes.

The one table of the layer media types the tools in use push (OCI,
docker schema2, oras, ``application/zstd``...; the manifest media types
are :mod:`~ironic_images.image_service.oci.client`'s), for
:meth:`~ironic_images.image_service.oci.OciImageService.identify_specific_image`
and :meth:`~ironic_images.image_service.oci.OciImageService.show`. Whether a
layer is a tar archive is never read here: oras labels a plain file
``application/vnd.oci.image.layer.v1.tar`` by default, so the sink tells a
tar archive by its header.
"""

import os
import typing

# Whole media types that name a compression.
_COMPRESSION_TYPES = {
    'application/zstd': 'zstd',
    'application/x-zstd': 'zstd',
    'application/gzip': 'gzip',
    'application/x-gzip': 'gzip',
    'application/x-xz': 'xz',
}
# Endings of structured media types: OCI's "+gzip"/"+zstd", docker's
# "rootfs.diff.tar.gzip".
_COMPRESSION_ENDINGS = (('+zstd', 'zstd'), ('+gzip', 'gzip'),
                        ('.tar.gzip', 'gzip'), ('.tar.zstd', 'zstd'),
                        ('+xz', 'xz'))
_COMPRESSION_SUFFIXES = {'.zst': 'zstd', '.zstd': 'zstd', '.gz': 'gzip',
                         '.gzip': 'gzip', '.xz': 'xz'}
# File name extensions of disk images, and the format each means.
_DISK_SUFFIXES = {'qcow2': 'qcow2', 'img': 'raw', 'raw': 'raw',
                  'iso': 'iso', 'vmdk': 'vmdk', 'vhd': 'vhd',
                  'vhdx': 'vhdx', 'vdi': 'vdi', 'qed': 'qed'}


class Found(typing.NamedTuple):
    """A fact about a layer and where it was learnt.

    :ivar value: the fact (``gzip``, ``qcow2``...), or None.
    :ivar source: ``media_type``, ``annotation``, ``filename`` or
        ``inspection``; None when nothing said.
    """

    value: typing.Optional[str] = None
    source: typing.Optional[str] = None


def _base(media_type):
    return (media_type or '').split(';')[0].strip().lower()


def compression(media_type: typing.Optional[str],
                filename: typing.Optional[str] = None) -> Found:
    """The compression of a layer, from its media type, then its name.

    :param media_type: the layer's ``mediaType``.
    :param filename: its ``org.opencontainers.image.title``, or None.
    :returns: a :class:`Found` of ``zstd``, ``gzip``, ``xz`` or None.
    """
    base = _base(media_type)
    if base in _COMPRESSION_TYPES:
        return Found(_COMPRESSION_TYPES[base], 'media_type')
    for ending, name in _COMPRESSION_ENDINGS:
        if base.endswith(ending):
            return Found(name, 'media_type')
    suffix = os.path.splitext((filename or '').lower())[1]
    if suffix in _COMPRESSION_SUFFIXES:
        return Found(_COMPRESSION_SUFFIXES[suffix], 'filename')
    return Found()


def disk_format_of_name(filename: typing.Optional[str]
                        ) -> typing.Optional[str]:
    """The disk format a file name says, compression suffixes aside.

    :param filename: ``disk.qcow2``, ``disk.raw.zst``, ``disk/f.img``...
    :returns: ``qcow2``, ``raw``, ``iso``, ``vmdk``... or None.
    """
    name = os.path.basename(filename or '').lower()
    stem, suffix = os.path.splitext(name)
    if suffix in _COMPRESSION_SUFFIXES:
        stem, suffix = os.path.splitext(stem)
    return _DISK_SUFFIXES.get(suffix.lstrip('.'))
