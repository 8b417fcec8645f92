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

"""One vocabulary of disk format names: the inspector's, Glance's, qemu's.

The format inspector (oslo.utils) says raw, qcow2, vmdk, vhd, vhdx, vdi,
qed, iso, gpt, luks; Glance's ``disk_format`` says vhd and ploop where
qemu-img says vpc and parallels, and aki/ari/ami for raw kernels, ramdisks
and machine images. :data:`FORMATS` is the one table of them, and every
other module asks it rather than keeping a map of its own.
"""

import dataclasses
import typing


@dataclasses.dataclass(frozen=True)
class DiskFormat:
    """A disk format under each of its names.

    :ivar name: the format inspector's name, which ironic-images reports.
    :ivar qemu: what ``qemu-img -f``/``-O`` calls it.
    :ivar glance: Glance's ``disk_format`` for it.
    :ivar raw: a declared ``raw`` accepts it, and permitting raw permits
        it (a whole disk with a partition table is raw data).
    :ivar size_is_length: its virtual size is the length of its data.
    """

    name: str
    qemu: str
    glance: str
    raw: bool = False
    size_is_length: bool = False

    @property
    def is_disk(self) -> bool:
        """Whether its bytes already are the disk (qemu-img reads raw)."""
        return self.qemu == 'raw'


FORMATS: typing.Mapping[str, DiskFormat] = {f.name: f for f in (
    DiskFormat('raw', 'raw', 'raw', raw=True, size_is_length=True),
    # A whole disk whose first sectors hold a GUID partition table.
    DiskFormat('gpt', 'raw', 'raw', raw=True, size_is_length=True),
    # qemu-img has no ISO driver: an ISO 9660 image is raw to it.
    DiskFormat('iso', 'raw', 'iso'),
    DiskFormat('qcow2', 'qcow2', 'qcow2'),
    DiskFormat('vmdk', 'vmdk', 'vmdk'),
    DiskFormat('vhd', 'vpc', 'vhd'),
    DiskFormat('vhdx', 'vhdx', 'vhdx'),
    DiskFormat('vdi', 'vdi', 'vdi'),
    DiskFormat('qed', 'qed', 'qed'),
    DiskFormat('luks', 'luks', 'luks'),
    DiskFormat('ploop', 'parallels', 'ploop'),
)}

#: Other names a format is declared by (Glance's, qemu-img's, Amazon's).
ALIASES: typing.Mapping[str, str] = {
    'vpc': 'vhd', 'qcow': 'qcow2', 'parallels': 'ploop',
    'aki': 'raw', 'ari': 'raw', 'ami': 'raw',
}

#: Formats whose bytes already are the disk: nothing to convert to raw.
DISK_FORMATS = tuple(f.name for f in FORMATS.values() if f.is_disk)
#: Formats a declared ``raw`` accepts (raw data to anyone who reads it).
RAW_FORMATS = frozenset(f.name for f in FORMATS.values() if f.raw)


def canonical(fmt: str) -> str:
    """The inspector's name for a declared format.

    :param fmt: a format name in any of the vocabularies, any case.
    :returns: the inspector's name (``vpc`` -> ``vhd``, ``aki`` ->
        ``raw``); an unknown name lower-cased.
    """
    fmt = str(fmt).strip().lower()
    return ALIASES.get(fmt, fmt)


def qemu_name(fmt: str) -> str:
    """The name qemu-img knows a format by.

    :param fmt: a format name in any of the vocabularies.
    :returns: qemu-img's name (``vhd`` -> ``vpc``, ``iso`` and ``gpt`` ->
        ``raw``); an unknown name lower-cased, as it is.
    """
    fmt = canonical(fmt)
    known = FORMATS.get(fmt)
    return known.qemu if known else fmt


def from_qemu_name(qemu: str) -> str:
    """The conventional (Glance) name of a qemu-img format name.

    ``raw`` stays ``raw``: several formats are raw to qemu-img, and
    calling every raw image an ISO would be wrong.

    :param qemu: a qemu-img format name, e.g. ``vpc``.
    :returns: the Glance name, e.g. ``vhd``; an unknown name as it is.
    """
    if qemu in FORMATS:
        return FORMATS[qemu].glance
    for known in FORMATS.values():
        if known.qemu == qemu:
            return known.glance
    return qemu


def detected_as(qemu: str) -> tuple:
    """What the inspector may call a file qemu-img writes as ``qemu``.

    :param qemu: a qemu-img output format name.
    :returns: the inspector's names (``raw`` -> raw, gpt, iso).
    """
    return tuple(f.name for f in FORMATS.values() if f.qemu == qemu)


def matches_declared(actual: str, declared: str) -> bool:
    """Tell whether a detected format is the one declared.

    :param actual: the detected format (the inspector's name).
    :param declared: the declared format, in any vocabulary.
    :returns: True when they are the same format; a declared raw accepts
        every :data:`RAW_FORMATS`.
    """
    declared = canonical(declared)
    if declared == 'raw':
        return actual in RAW_FORMATS
    return actual == declared


def size_is_length(fmt: str) -> bool:
    """Whether a format's virtual size is the length of its data.

    :param fmt: the inspector's name.
    """
    known = FORMATS.get(fmt)
    return bool(known and known.size_is_length)
