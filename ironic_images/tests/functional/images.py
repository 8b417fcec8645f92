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
"""A factory of real disk images for the tests.

Nothing binary is committed: every image is made when a test asks for it,
by ``qemu-img`` for the virtual disk formats and by plain
Python for the formats that are only a few structures (GPT, ISO 9660) and
for the hostile inputs.

The one entry point is :func:`make_image`::

    path = images.make_image('qcow2', self.useFixture(
        fixtures.TempDir()).path, size=4 * units.Mi)

:data:`KINDS` maps every kind to the formats that
``oslo_utils.imageutils.format_inspector`` finds in it (two for an ISO
that also carries a GPT or a qcow2 header). The images with content
(every kind converted from :func:`make_raw`'s output: qcow2, vmdk, vhdx,
vpc, vdi, qed) carry the same data pattern, so a converted image can be
compared with a :func:`make_raw` image of the same size by ``qemu-img
compare``. qemu-io is not needed.
"""

import os
import shutil
import struct
import subprocess
import tempfile
import uuid
import zlib

from ironic_images.tests.functional.servers import base

MiB = 1024 * 1024
SECTOR = 512
DEFAULT_SIZE = 4 * MiB

#: The secret of the luks image (``qemu-img --object secret,data=...``).
LUKS_SECRET = 'ironic-images-test'

#: A host file that the monolithicFlat descriptor points at; it must exist
#: (the exploit reads it), and any readable file works.
HOST_FILE = '/etc/hostname' if os.path.exists('/etc/hostname') else (
    '/etc/passwd')

#: kind -> the formats oslo's format inspector finds in it, sorted (two
#: for an image that carries two headers; ``('raw',)`` when nothing more
#: specific matches).
KINDS = {
    'raw': ('raw',),
    'gpt': ('gpt',),
    'qcow2': ('qcow2',),
    'qcow2-v2': ('qcow2',),
    'qcow2-compressed': ('qcow2',),
    'qcow2-backing-file': ('qcow2',),
    'qcow2-data-file': ('qcow2',),
    'vmdk-monolithic-sparse': ('vmdk',),
    'vmdk-stream-optimized': ('vmdk',),
    'vmdk-monolithic-flat': ('vmdk',),
    'vmdk-flat-host-file': ('vmdk',),
    'vmdk-huge-descriptor': ('vmdk',),
    'vhdx': ('vhdx',),
    'vpc': ('vhd',),
    # A fixed VHD has its footer only at the end, which oslo does not read.
    'vpc-fixed': ('raw',),
    'vdi': ('vdi',),
    'qed': ('qed',),
    'luks': ('luks',),
    'iso': ('iso',),
    'iso-gpt': ('gpt', 'iso'),       # a hybrid ISO
    'iso-qcow2': ('iso', 'qcow2'),   # hostile: a header hidden in another
    'garbage': ('raw',),
    # Shorter than the 512 bytes the qcow2 inspector needs.
    'truncated-qcow2': ('raw',),
    'empty': ('raw',),
}

# Where make_raw writes its pattern: (offset, length, byte). Data at the
# start, in the middle and near the end, zeros in between (holes), so a
# conversion that drops a cluster or shifts data is caught by a compare.
_PATTERN = ((64 * 1024, 64 * 1024, 0xab), (0.5, 128 * 1024, 0xcd),
            (-192 * 1024, 64 * 1024, 0xef))


def qemu_img(*args):
    """Run qemu-img (skips the test when it is missing, outside CI).

    :returns: its stdout, as text.
    :raises subprocess.CalledProcessError: on failure.
    """
    binary = base.require_binary('qemu-img')
    return subprocess.run((binary,) + tuple(str(a) for a in args),
                          check=True, capture_output=True,
                          stdin=subprocess.DEVNULL, text=True).stdout


def _path(directory, kind, suffix):
    return os.path.join(directory, '%s-%s.%s' % (
        kind, uuid.uuid4().hex[:8], suffix))


def _pattern_blocks(size):
    for offset, length, byte in _PATTERN:
        if isinstance(offset, float):
            offset = int(size * offset) // SECTOR * SECTOR
        elif offset < 0:
            offset = size + offset
        length = min(length, size - offset)
        if offset >= 0 and length > 0:
            yield offset, length, byte


def make_raw(directory, size=DEFAULT_SIZE, name=None):
    """Write a sparse raw image carrying the test data pattern.

    The first 64 KiB stay zero so that no format signature can appear by
    chance, whatever the size.

    :param directory: where to write it.
    :param size: its size in bytes (a multiple of 512, at least 256 KiB).
    :param name: the file name; a unique one by default.
    :returns: the path of the image.
    """
    path = os.path.join(directory, name) if name else _path(
        directory, 'raw', 'img')
    with open(path, 'wb') as f:
        f.truncate(size)
        for offset, length, byte in _pattern_blocks(size):
            f.seek(offset)
            f.write(bytes([byte]) * length)
    return path


def _convert(kind, directory, size, out_format, suffix, *options):
    raw = make_raw(directory, size)
    path = _path(directory, kind, suffix)
    try:
        qemu_img('convert', '-f', 'raw', '-O', out_format, *options, raw,
                 path)
    finally:
        os.unlink(raw)
    return path


def _create(kind, directory, size, fmt, suffix, *options):
    path = _path(directory, kind, suffix)
    qemu_img('create', '-q', '-f', fmt, *options, path, size)
    return path


# --- GPT -------------------------------------------------------------------

_GPT_LINUX_FS = uuid.UUID('0fc63daf-8483-4772-8e79-3d69d8477de4')
_GPT_ENTRIES = 128
_GPT_ENTRY_SIZE = 128


def _protective_mbr(total_sectors):
    """A protective MBR: one 0xEE partition from LBA 1 over the disk."""
    mbr = bytearray(SECTOR)
    size_lba = min(total_sectors - 1, 0xffffffff)
    # boot flag, start CHS (0, 2, 0), type 0xEE, end CHS, start LBA, size
    mbr[446:462] = struct.pack('<B3BB3BII', 0x00, 0x00, 0x02, 0x00, 0xee,
                               0xff, 0xff, 0xff, 1, size_lba)
    mbr[510:512] = b'\x55\xaa'
    return bytes(mbr)


def _gpt_header(current, backup, first, last, disk_guid, entries_lba,
                entries_crc):
    fields = struct.pack(
        '<8sIIIIQQQQ16sQIII', b'EFI PART', 0x00010000, 92, 0, 0, current,
        backup, first, last, disk_guid.bytes_le, entries_lba, _GPT_ENTRIES,
        _GPT_ENTRY_SIZE, entries_crc)
    crc = zlib.crc32(fields)
    fields = fields[:16] + struct.pack('<I', crc) + fields[20:]
    return fields + bytes(SECTOR - len(fields))


def gpt_structures(total_sectors, part_first=2048):
    """Build the primary and backup GPT structures of a disk.

    :param total_sectors: the size of the disk in 512-byte sectors.
    :param part_first: the first LBA of the single partition.
    :returns: a list of (offset, bytes) to write.
    """
    entries_sectors = _GPT_ENTRIES * _GPT_ENTRY_SIZE // SECTOR
    last_usable = total_sectors - 2 - entries_sectors
    entry = struct.pack('<16s16sQQQ72s', _GPT_LINUX_FS.bytes_le,
                        uuid.uuid4().bytes_le, part_first, last_usable, 0,
                        'test'.encode('utf-16-le'))
    entries = entry + bytes(_GPT_ENTRIES * _GPT_ENTRY_SIZE - len(entry))
    entries_crc = zlib.crc32(entries)
    disk_guid = uuid.uuid4()
    backup_lba = total_sectors - 1
    first_usable = 2 + entries_sectors
    primary = _gpt_header(1, backup_lba, first_usable, last_usable,
                          disk_guid, 2, entries_crc)
    backup = _gpt_header(backup_lba, 1, first_usable, last_usable,
                         disk_guid, backup_lba - entries_sectors,
                         entries_crc)
    return [(0, _protective_mbr(total_sectors)),
            (SECTOR, primary),
            (2 * SECTOR, entries),
            ((backup_lba - entries_sectors) * SECTOR, entries),
            (backup_lba * SECTOR, backup)]


def _write_at(path, blocks):
    with open(path, 'r+b') as f:
        for offset, data in blocks:
            f.seek(offset)
            f.write(data)


def _make_gpt(directory, size):
    path = make_raw(directory, size, os.path.basename(
        _path(directory, 'gpt', 'img')))
    _write_at(path, gpt_structures(size // SECTOR))
    return path


# --- ISO 9660 --------------------------------------------------------------

ISO_BLOCK = 2048
ISO_PVD_OFFSET = 16 * ISO_BLOCK     # 32 KiB: after the system area


def _both_endian(fmt_le, fmt_be, value):
    return struct.pack(fmt_le, value) + struct.pack(fmt_be, value)


def iso_descriptors(size):
    """Build a minimal ISO 9660 primary volume descriptor and terminator.

    This is what oslo's ISOInspector reads (the type byte and "CD001" at
    32 KiB, the volume space size at +80 and the logical block size at
    +128, both both-endian); it is not a mountable file system.

    :param size: the volume size in bytes (a multiple of 2048).
    :returns: a list of (offset, bytes) to write.
    """
    pvd = bytearray(ISO_BLOCK)
    pvd[0:7] = b'\x01CD001\x01'
    pvd[8:40] = b'LINUX'.ljust(32)
    pvd[40:72] = b'IRONIC_IMAGES_TEST'.ljust(32)
    pvd[80:88] = _both_endian('<I', '>I', size // ISO_BLOCK)
    pvd[120:124] = _both_endian('<H', '>H', 1)    # volume set size
    pvd[124:128] = _both_endian('<H', '>H', 1)    # volume sequence number
    pvd[128:132] = _both_endian('<H', '>H', ISO_BLOCK)
    pvd[881] = 1                                   # file structure version
    terminator = bytearray(ISO_BLOCK)
    terminator[0:7] = b'\xffCD001\x01'
    return [(ISO_PVD_OFFSET, bytes(pvd)),
            (ISO_PVD_OFFSET + ISO_BLOCK, bytes(terminator))]


def qcow2_header(virtual_size, version=3, backing_offset=0,
                 incompatible=0):
    """Return the first 104 bytes of a qcow2 image (no tables follow).

    :param virtual_size: the size field.
    :param version: 2 or 3 (other values are refused by oslo).
    :param backing_offset: non-zero names a backing file.
    :param incompatible: the incompatible-features bits (bit 2: external
        data file; bits 5 and up are unknown to oslo).
    """
    # magic, version, backing file offset and size, cluster bits, size,
    # crypt method, L1 size and offset, refcount table offset and
    # clusters, snapshots count and offset, incompatible, compatible and
    # autoclear features, refcount order, header length.
    header = struct.pack('>4sIQIIQIIQQIIQQQQII', b'QFI\xfb', version,
                         backing_offset, 0, 16, virtual_size, 0, 1, 0x30000,
                         0x10000, 1, 0, 0, incompatible, 0, 0, 4, 104)
    return header + bytes(104 - len(header))


def vmdk_sparse(create_type='monolithicSparse', sectors=2048,
                gd_at_end=False, descriptor=None, version=1):
    """Return the start of a hosted sparse VMDK: header and descriptor.

    Enough for the format inspector (and not for qemu-img: no grain
    tables follow).

    :param create_type: the createType of the embedded descriptor.
    :param sectors: the capacity, in 512-byte sectors.
    :param gd_at_end: put the grain directory at the end, which makes the
        inspector wait for a footer in the last 1536 bytes.
    :param descriptor: the descriptor text (default: one SPARSE extent).
    :param version: the header version.
    """
    if descriptor is None:
        descriptor = vmdk_descriptor(create_type, 'disk.vmdk', sectors,
                                     extent_type='SPARSE')
    desc = descriptor.encode('ascii')
    desc_sectors = max(1, -(-len(desc) // SECTOR))
    gd_offset = 0xffffffffffffffff if gd_at_end else 1 + desc_sectors
    header = struct.pack('<4sIIQQQQIQQ', b'KDMV', version, 3, sectors, 128,
                         1, desc_sectors, 512, 0, gd_offset)
    header += bytes(SECTOR - len(header))
    return header + desc.ljust(desc_sectors * SECTOR, b'\0')


def _make_iso(kind, directory, size):
    size = max(size // ISO_BLOCK * ISO_BLOCK, 64 * 1024)
    path = make_raw(directory, size, os.path.basename(
        _path(directory, kind, 'iso')))
    blocks = iso_descriptors(size)
    if kind == 'iso-gpt':
        # A hybrid ISO: a protective MBR and GPT in the system area, as
        # xorriso/isohybrid make for USB sticks.
        blocks += [b for b in gpt_structures(size // SECTOR, part_first=64)
                   if b[0] < ISO_PVD_OFFSET]
    elif kind == 'iso-qcow2':
        blocks.append((0, qcow2_header(size)))
    _write_at(path, blocks)
    return path


# --- VMDK descriptors ------------------------------------------------------

_VMDK_DESCRIPTOR = '''# Disk DescriptorFile
version=1
CID=12345678
parentCID=ffffffff
createType="%(create_type)s"

# Extent description
RW %(sectors)d %(extent_type)s "%(extent)s" 0

# The Disk Data Base
#DDB

ddb.virtualHWVersion = "4"
ddb.adapterType = "ide"
'''


def vmdk_descriptor(create_type, extent, sectors, extent_type='FLAT'):
    """Return the text of a VMDK descriptor with one extent.

    :param create_type: the createType value.
    :param extent: the extent file name (a path for a hostile one).
    :param sectors: the extent size in 512-byte sectors.
    """
    return _VMDK_DESCRIPTOR % {'create_type': create_type,
                               'sectors': sectors, 'extent': extent,
                               'extent_type': extent_type}


def _make_vmdk_flat(kind, directory, size):
    path = _create(kind, directory, size, 'vmdk', 'vmdk',
                   '-o', 'subformat=monolithicFlat')
    if kind == 'vmdk-flat-host-file':
        # The classic exploit: the extent is a host file that a
        # conversion would copy into the output image.
        extent = os.path.realpath(HOST_FILE)
        sectors = max(1, os.path.getsize(extent) // SECTOR)
        with open(path, 'w') as f:
            f.write(vmdk_descriptor('monolithicFlat', extent, sectors))
    return path


def _make_huge_descriptor(directory, size):
    """A text VMDK descriptor of ``size`` bytes (at least 2 MiB).

    Valid at its start (monolithicSparse, so the create type passes), then
    megabytes of comment lines and a hostile extent past what any parser
    should read. It must be refused, quickly and in bounded memory.
    """
    size = max(size, 2 * MiB)
    path = _path(directory, 'vmdk-huge-descriptor', 'vmdk')
    head = vmdk_descriptor('monolithicSparse', 'disk.vmdk', 2048,
                           extent_type='SPARSE').encode('ascii')
    line = b'# ' + b'x' * 1021 + b'\n'
    with open(path, 'wb') as f:
        f.write(head)
        written = len(head)
        block = line * 1024
        tail = ('RW 2048 FLAT "%s" 0\n' % HOST_FILE).encode('ascii')
        while written + len(block) + len(tail) <= size:
            f.write(block)
            written += len(block)
        rest = size - written - len(tail)
        f.write(line * (rest // len(line)))
        if rest % len(line):
            f.write(line[:rest % len(line) - 1] + b'\n')
        f.write(tail)
    return path


# --- hostile and broken inputs ---------------------------------------------

def _make_garbage(directory, size):
    path = _path(directory, 'garbage', 'bin')
    with open(path, 'wb') as f:
        f.write(os.urandom(size))
    return path


def _make_truncated_qcow2(directory, size):
    """The first 100 bytes of a real qcow2: its header ends early."""
    source = _create('qcow2', directory, size, 'qcow2', 'qcow2')
    path = _path(directory, 'truncated-qcow2', 'qcow2')
    with open(source, 'rb') as src, open(path, 'wb') as dst:
        dst.write(src.read(100))
    os.unlink(source)
    return path


def _make_empty(directory, size):
    path = _path(directory, 'empty', 'img')
    open(path, 'wb').close()
    return path


def _make_qcow2_backing(directory, size):
    backing = make_raw(directory, size)
    path = _path(directory, 'qcow2-backing-file', 'qcow2')
    qemu_img('create', '-q', '-f', 'qcow2', '-b', backing, '-F', 'raw',
             path, size)
    return path


def _make_qcow2_data_file(directory, size):
    path = _path(directory, 'qcow2-data-file', 'qcow2')
    data = path + '.data'
    qemu_img('create', '-q', '-f', 'qcow2', '-o', 'data_file=' + data,
             path, size)
    return path


def _luks_template(size):
    """A luks image of ``size`` bytes, made once and shared by processes.

    qemu-img spends seconds benchmarking PBKDF2 for each luks image, even
    with a tiny iter-time, so the test workers share one per size.
    """
    cache = os.path.join(tempfile.gettempdir(),
                         'ironic-images-test-luks-%d' % os.getuid())
    os.makedirs(cache, exist_ok=True)
    template = os.path.join(cache, '%d.luks' % size)
    if not os.path.exists(template):
        part = '%s.%d.part' % (template, os.getpid())
        # iter-time=10: the default (2 s of PBKDF2) is for real secrets.
        # qemu-img times a first round of PBKDF2 by the thread's CPU time
        # and fails ("Unable to get accurate CPU usage") when that reads
        # 0 ms: 17 times in 60 here on an idle host, more under load. Each
        # try is a few milliseconds: try again, many times.
        attempts = 30
        for attempt in range(attempts):
            try:
                qemu_img('create', '-q', '-f', 'luks', '--object',
                         'secret,id=s0,data=' + LUKS_SECRET, '-o',
                         'key-secret=s0,iter-time=10', part, size)
                break
            except subprocess.CalledProcessError as exc:
                if (attempt == attempts - 1 or 'accurate CPU usage'
                        not in (exc.stderr or '')):
                    raise
        os.replace(part, template)
    return template


def _make_luks(directory, size):
    path = _path(directory, 'luks', 'luks')
    shutil.copyfile(_luks_template(size), path)
    return path


_MAKERS = {
    'raw': lambda d, s: make_raw(d, s),
    'gpt': _make_gpt,
    'qcow2': lambda d, s: _convert('qcow2', d, s, 'qcow2', 'qcow2'),
    'qcow2-v2': lambda d, s: _convert('qcow2-v2', d, s, 'qcow2', 'qcow2',
                                      '-o', 'compat=0.10'),
    'qcow2-compressed': lambda d, s: _convert(
        'qcow2-compressed', d, s, 'qcow2', 'qcow2', '-c'),
    'qcow2-backing-file': _make_qcow2_backing,
    'qcow2-data-file': _make_qcow2_data_file,
    'vmdk-monolithic-sparse': lambda d, s: _convert(
        'vmdk-monolithic-sparse', d, s, 'vmdk', 'vmdk',
        '-o', 'subformat=monolithicSparse'),
    'vmdk-stream-optimized': lambda d, s: _convert(
        'vmdk-stream-optimized', d, s, 'vmdk', 'vmdk',
        '-o', 'subformat=streamOptimized'),
    'vmdk-monolithic-flat': lambda d, s: _make_vmdk_flat(
        'vmdk-monolithic-flat', d, s),
    'vmdk-flat-host-file': lambda d, s: _make_vmdk_flat(
        'vmdk-flat-host-file', d, s),
    'vmdk-huge-descriptor': _make_huge_descriptor,
    'vhdx': lambda d, s: _convert('vhdx', d, s, 'vhdx', 'vhdx'),
    'vpc': lambda d, s: _convert('vpc', d, s, 'vpc', 'vhd'),
    'vpc-fixed': lambda d, s: _convert('vpc-fixed', d, s, 'vpc', 'vhd',
                                       '-o', 'subformat=fixed'),
    'vdi': lambda d, s: _convert('vdi', d, s, 'vdi', 'vdi'),
    'qed': lambda d, s: _convert('qed', d, s, 'qed', 'qed'),
    'luks': _make_luks,
    'iso': lambda d, s: _make_iso('iso', d, s),
    'iso-gpt': lambda d, s: _make_iso('iso-gpt', d, s),
    'iso-qcow2': lambda d, s: _make_iso('iso-qcow2', d, s),
    'garbage': _make_garbage,
    'truncated-qcow2': _make_truncated_qcow2,
    'empty': _make_empty,
}


def make_image(kind, directory, size=DEFAULT_SIZE):
    """Make a test image of one kind.

    :param kind: one of :data:`KINDS`.
    :param directory: where to write it (and its backing or data file).
    :param size: the virtual size in bytes (a multiple of 64 KiB, at least
        256 KiB; the huge vmdk descriptor is at least 2 MiB, the garbage
        file is ``size`` random bytes).
    :returns: the path of the image.
    :raises KeyError: for an unknown kind.
    :raises subprocess.CalledProcessError: if qemu-img fails.
    """
    return _MAKERS[kind](directory, size)
