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

import gzip
import io
import os
import tarfile

import fixtures

from ironic_images import exception
from ironic_images.sink import image_sink
from ironic_images.sink import untar
from ironic_images.tests import base

DISK = os.urandom(3 * 512 + 77) + bytes(70000) + b'end'
OTHER = os.urandom(1000)
FORMATS = (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT)
PIECES = (1, 17, 511, 512, 513, 64 * 1024, 10 ** 7)
TYPES = {'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE,
         'hardlink': tarfile.LNKTYPE, 'chr': tarfile.CHRTYPE,
         'blk': tarfile.BLKTYPE, 'fifo': tarfile.FIFOTYPE}


def make_tar(members, fmt=tarfile.PAX_FORMAT):
    """A tar archive of ``(name, data or a type name, link)`` items."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w', format=fmt) as archive:
        for item in members:
            name, content = item[:2]
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if isinstance(content, bytes):
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
                continue
            info.type = TYPES[content]
            if content in ('symlink', 'hardlink'):
                info.linkname = item[2]
            archive.addfile(info)
    return out.getvalue()


def unpack(data, piece=64 * 1024, name=None):
    out = bytearray()
    stage = untar.TarStage(out.extend, 'href', name)
    for start in range(0, len(data), piece):
        stage.write(data[start:start + piece])
    stage.finish()
    return bytes(out), stage


class TestTarStage(base.TestCase):

    def assertUnpacks(self, members, member, data=DISK):
        for fmt in FORMATS:
            archive = make_tar(members, fmt)
            for piece in PIECES:
                out, stage = unpack(archive, piece)
                self.assertTrue(data == out, (fmt, piece))
                self.assertTrue(stage.is_archive)
                self.assertEqual(member, stage.member)

    def assertRefused(self, members, *words, fmt=tarfile.PAX_FORMAT):
        archive = make_tar(members, fmt)
        for piece in (1, 512, 10 ** 7):
            error = self.assertRaises(exception.ImageUnacceptable, unpack,
                                      archive, piece, 'sha256:ab')
            for word in words + ('the tar archive sha256:ab',):
                self.assertIn(word, str(error))
        return error

    def test_container_disk(self):
        self.assertUnpacks([('disk', 'dir'),
                            ('disk/disk.qcow2', DISK)], 'disk/disk.qcow2')

    def test_container_disk_with_dot_slash(self):
        self.assertUnpacks([('./', 'dir'),
                            ('./disk/', 'dir'),
                            ('./disk/fedora.img', DISK)], 'disk/fedora.img')

    def test_single_file(self):
        self.assertUnpacks([('disk.raw', DISK)], 'disk.raw')

    def test_directory_push(self):
        self.assertUnpacks([('images', 'dir'),
                            ('images/empty', b''),
                            ('images/disk.qcow2', DISK)],
                           'images/disk.qcow2')

    def test_disk_directory_wins_over_later_files(self):
        self.assertUnpacks([('disk/disk.img', DISK), ('README', OTHER),
                            ('etc/motd', OTHER)], 'disk/disk.img')

    def test_long_names(self):
        name = 'd' * 150 + '/' + 'e' * 120 + '.qcow2'
        for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
            out, stage = unpack(make_tar([(name, DISK)], fmt), 100)
            self.assertEqual(DISK, out)
            self.assertEqual(name, stage.member)

    def test_ustar_prefix(self):
        name = 'p' * 120 + '/disk.raw'
        out, stage = unpack(make_tar([(name, DISK)], tarfile.USTAR_FORMAT))
        self.assertEqual((DISK, name), (out, stage.member))

    def test_not_a_tar_passes_through(self):
        for data in (DISK, b'', b'short', bytes(4096)):
            for piece in (1, 300, 10 ** 7):
                out, stage = unpack(data, piece)
                self.assertTrue(data == out, piece)
                self.assertFalse(stage.is_archive)
                self.assertIsNone(stage.member)

    def test_bad_checksum_is_not_a_tar(self):
        archive = bytearray(make_tar([('disk.raw', DISK)]))
        archive[0] ^= 1
        self.assertFalse(untar.is_tar_header(archive))
        self.assertEqual(bytes(archive), unpack(bytes(archive))[0])

    def test_two_disks(self):
        self.assertRefused([('disk/a.qcow2', DISK), ('disk/b.qcow2', DISK)],
                           'several disks', 'disk/a.qcow2', 'disk/b.qcow2')

    def test_two_files(self):
        self.assertRefused([('a.raw', DISK), ('b.raw', OTHER)],
                           'several files', 'a.raw, b.raw')

    def test_file_before_the_disk_directory(self):
        self.assertRefused([('README', OTHER), ('disk/d.img', DISK)],
                           'README', 'disk/d.img')

    def test_no_disk(self):
        # (An archive with no member at all is zeros: not told from data.)
        for members in ([('disk', 'dir')],
                        [('empty', b'')]):
            self.assertRefused(members, 'no regular file')

    def test_traversal(self):
        for name in ('../disk.raw', 'disk/../../x', '/etc/disk.raw'):
            for fmt in FORMATS:
                self.assertRefused([(name, DISK)], 'leaves the archive',
                                   fmt=fmt)

    def test_traversal_in_a_directory_entry(self):
        self.assertRefused([('../up', 'dir'),
                            ('disk.raw', DISK)], 'leaves the archive')

    def test_symlink_as_the_disk(self):
        for fmt in FORMATS:
            self.assertRefused([('disk/real', DISK),
                                ('disk/disk.qcow2', 'symlink',
                                 'real')][1:], 'symbolic link', fmt=fmt)

    def test_hard_link(self):
        self.assertRefused([('disk.raw', DISK),
                            ('disk2.raw', 'hardlink', 'disk.raw')],
                           'hard link')

    def test_long_link_target(self):
        self.assertRefused([('disk.raw', 'symlink', 'x' * 200)],
                           'link')

    def test_devices_and_fifos(self):
        for kind, word in (('chr', 'character device'),
                           ('blk', 'block device'),
                           ('fifo', 'fifo')):
            self.assertRefused([('disk/dev', kind)], word)

    def test_data_after_the_end(self):
        archive = make_tar([('a.raw', DISK)]) + make_tar([('b.raw', DISK)])
        self.assertRaises(exception.ImageUnacceptable, unpack, archive)

    def test_corrupt_second_header(self):
        archive = bytearray(make_tar([('a', 'dir'),
                                      ('a/disk.raw', DISK)],
                                     tarfile.USTAR_FORMAT))
        archive[512 + 10] ^= 1
        error = self.assertRaises(exception.ImageUnacceptable, unpack,
                                  bytes(archive))
        self.assertIn('offset 512', str(error))

    def test_truncated_member(self):
        archive = make_tar([('disk.raw', DISK)])
        self.assertRaises(exception.ImageDownloadFailed, unpack,
                          archive[:2000])

    def test_huge_extended_header(self):
        archive = make_tar([('disk.raw', DISK)], tarfile.PAX_FORMAT)
        header = bytearray(512)
        header[0:9] = b'PaxHeader'
        header[124:136] = b'%011o\0' % (untar.MAX_EXTENDED_HEADER + 1)
        header[156:157] = b'x'
        header[257:263] = b'ustar\0'
        header[263:265] = b'00'
        header[148:156] = b' ' * 8
        header[148:155] = b'%06o\0' % sum(header)
        error = self.assertRaises(exception.ImageUnacceptable, unpack,
                                  bytes(header) + archive)
        self.assertIn('extended header', str(error))


class TestImageSinkUnpacks(base.TestCase):

    def setUp(self):
        super().setUp()
        self.path = os.path.join(
            self.useFixture(fixtures.TempDir()).path, 'image')
        self.file = open(self.path, 'wb', buffering=0)
        self.addCleanup(self.file.close)

    def test_gzipped_layer(self):
        layer = gzip.compress(make_tar([('disk', 'dir'),
                                        ('disk/disk.img', DISK)]))
        sink = image_sink.ImageSink(self.file, 'href')
        sink.write(layer[:100])
        sink.seek(0)
        for start in range(0, len(layer), 4096):
            sink.write(layer[start:start + 4096])
        result = sink.finish()
        self.assertEqual(('gzip', 'disk/disk.img', len(DISK), len(layer)),
                         (result.compression, result.member, result.size,
                          result.received))
        with open(self.path, 'rb') as f:
            self.assertEqual(DISK, f.read())

    def test_unpack_off_writes_the_archive(self):
        layer = make_tar([('disk.img', DISK)])
        sink = image_sink.ImageSink(self.file, 'href', unpack=False)
        sink.write(layer)
        result = sink.finish()
        self.assertIsNone(result.member)
        with open(self.path, 'rb') as f:
            self.assertEqual(layer, f.read())
