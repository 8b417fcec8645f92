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

"""What the first bytes of a layer say when its labels do not.

skopeo drops layer annotations and docker never writes them, so a layer
may come with no file name and no disk format. :func:`probe` looks at the
head of the blob through the sink's own stages: the compression by its
magic, a tar archive by its header (and the name of the disk inside it),
and the disk's format by the format inspector. Decoding stops after
:data:`INNER_BYTES` of the disk, so a small head that decompresses to
much costs little. The result is a guess for reporting; a fetch decides
again on every byte.
"""

import typing

from oslo_log import log as logging
from oslo_utils import units

from ironic_images import exception
from ironic_images.formats import inspection
from ironic_images.formats import names as formats
from ironic_images.sink import decompress
from ironic_images.sink import untar

LOG = logging.getLogger(__name__)

#: How many bytes of the blob are read.
HEAD_BYTES = 256 * units.Ki
#: How many bytes of the disk are inspected (an ISO 9660 volume
#: descriptor is at 32 KiB).
INNER_BYTES = 64 * units.Ki
# The most bytes decoding may produce before the disk is reached.
_MAX_DECODED = 16 * units.Mi


class Probe(typing.NamedTuple):
    """What the head of a layer shows.

    :ivar compression: ``zstd``, ``gzip``, ``xz`` or None.
    :ivar archive: ``tar`` when the (decompressed) layer is a tar archive.
    :ivar member: the path of the disk in the archive, or None.
    :ivar disk_format: the disk format found (Glance's names: raw, qcow2,
        iso...), or None.
    """

    compression: typing.Optional[str] = None
    archive: typing.Optional[str] = None
    member: typing.Optional[str] = None
    disk_format: typing.Optional[str] = None


class _Enough(Exception):
    """Enough of the disk was seen."""


def probe(head: bytes, whole: bool, image_href: str) -> Probe:
    """Say what the head of a layer holds.

    :param head: the first bytes of the blob.
    :param whole: whether ``head`` is the whole blob.
    :param image_href: the blob, for messages.
    :returns: a :class:`Probe`; its fields are None where the head does
        not tell (a tar archive that would be refused, say).
    """
    inner = bytearray()

    def keep(data):
        inner.extend(memoryview(data)[:INNER_BYTES - len(inner)])
        if len(inner) >= INNER_BYTES:
            raise _Enough()

    compression = decompress.detect_compression(head)
    stage = untar.TarStage(keep, image_href)
    decoder = (decompress.new_decompressor(compression, stage.write,
                                           image_href, _MAX_DECODED)
               if compression else None)
    try:
        if decoder is not None:
            decoder.write(head)
        else:
            stage.write(head)
        if whole:
            if decoder is not None:
                decoder.finish()
            stage.finish()
    except _Enough:
        pass
    except exception.IronicImagesException as error:
        LOG.debug('The head of %(href)s tells little: %(error)s',
                  {'href': image_href, 'error': error})
        if not inner:
            return Probe(compression, 'tar' if stage.is_archive else None)
    return Probe(compression, 'tar' if stage.is_archive else None,
                 stage.member, _format_of(bytes(inner), image_href))


def _format_of(data, image_href):
    if not data:
        return None
    inspector = inspection.StreamInspector(image_href)
    inspector.update(data)
    inspector.finish()
    try:
        name = inspector.result().format
    except exception.IronicImagesException:
        return None
    if name is None:
        return None
    return formats.FORMATS[name].glance if name in formats.FORMATS else name
