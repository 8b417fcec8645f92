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

"""fetch_to_raw of qcow2 images written as raw while they arrive.

Every image is made by qemu-img and qemu-io in the layout under test
(compressed, version 2, 2 MiB clusters, preallocated metadata, an L1
table moved to the end by a resize, data written in random guest order,
an internal snapshot, lazy refcounts). Each is fetched from nginx and
from a file, and the raw disk must be byte for byte what ``qemu-img
convert -f qcow2 -O raw`` makes of the same image, with no qemu-img
conversion run (the stream decoder did it); layouts the decoder leaves
to qemu-img (4 KiB clusters) give the same disk through qemu-img.
"""

import gc
import gzip
import json
import os
import struct

import fixtures
from oslo_utils import units
import zstandard

from ironic_images import exception
from ironic_images.fetch import volume
from ironic_images.sink import image_sink
from ironic_images.sink import outputs
from ironic_images.sink import qcow2_stream
from ironic_images.tests.functional import images
from ironic_images.tests.functional import qcow2_variants as variants
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.unit.sink import qcow2_builder as qb


class TestStreamedVariants(variants.Qcow2StreamTestCase):
    """Every layout qemu writes, from nginx and from a file."""

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(nginx.NginxFixture(self.root))

    def check_variant(self, variant):
        path = self.make(variant)
        expected = self.reference(path)
        header, why = qcow2_stream.streamable_header(
            open(path, 'rb').read(qcow2_stream.HEADER_BYTES))
        self.assertIsNone(why, variant)
        hrefs = {'http': self.server.url_for(os.path.basename(path)),
                 'file': 'file://' + path}
        for scheme, href in hrefs.items():
            name = '%s-%s' % (variant, scheme)
            fetched = self.fetch_to_raw(href, name)
            self.assertStreamed()
            self.assertEqual('raw', fetched.format, name)
            self.assertEqual('qcow2', fetched.source_format, name)
            self.assertEqual(header.virtual_size, fetched.virtual_size)
            self.assertEqual(header.virtual_size, fetched.size)
            self.assertSameRaw(expected, self.dest(name))
        self.assertOnly(['%s-%s' % (variant, s) for s in hrefs])

    def test_default(self):
        self.check_variant('default')

    def test_written_by_qemu_img_convert(self):
        self.check_variant('converted')

    def test_zlib_compressed(self):
        self.check_variant('zlib')

    def test_zstd_compressed(self):
        self.check_variant('zstd')

    def test_zstd_compressed_every_cluster(self):
        self.check_variant('zstd-many')

    def test_zlib_compressed_2m_clusters(self):
        self.check_variant('zlib-2m')

    def test_version_2(self):
        self.check_variant('v2')

    def test_2m_clusters(self):
        self.check_variant('cluster-2m')

    def test_preallocated_metadata(self):
        self.check_variant('preallocated')

    def test_lazy_refcounts(self):
        self.check_variant('lazy-refcounts')

    def test_size_not_a_multiple_of_the_cluster(self):
        self.check_variant('odd-size')

    def test_l1_table_moved_to_the_end_by_a_resize(self):
        path = self.make('resized')
        fields = variants.qcow2_fields(path)
        mapped = images.qemu_img('map', '-f', 'qcow2', '--output=json',
                                 path)
        first_data = min(e['offset'] for e in json.loads(mapped)
                         if e['data'] and 'offset' in e)
        # The layout under test: data before the L1 table in the file.
        self.assertGreater(fields['l1_offset'], first_data)
        os.unlink(path)
        self.check_variant('resized')

    def test_random_guest_order(self):
        self.check_variant('random-order')

    def test_internal_snapshot(self):
        path = self.make('snapshot')
        self.assertEqual(1, variants.qcow2_fields(path)['snapshots'])
        os.unlink(path)
        self.check_variant('snapshot')

    def test_compressed_in_transit(self):
        """A qcow2 served as .zst or .gz is decompressed then streamed."""
        path = self.make('zlib')
        expected = self.reference(path)
        with open(path, 'rb') as f:
            data = f.read()
        served = {'zst': zstandard.ZstdCompressor().compress(data),
                  'gz': gzip.compress(data)}
        for suffix, body in served.items():
            with open(self.path('disk.qcow2.' + suffix), 'wb') as f:
                f.write(body)
            fetched = self.fetch_to_raw(
                self.server.url_for('disk.qcow2.' + suffix), suffix)
            self.assertStreamed()
            self.assertEqual({'zst': 'zstd', 'gz': 'gzip'}[suffix],
                             fetched.compression)
            self.assertSameRaw(expected, self.dest(suffix))
        self.assertOnly(served)

    def test_virtual_size_not_whole_sectors(self):
        # qemu-img never makes one; qemu reads it as whole sectors, and the
        # size reported must be the disk's.
        builder = qb.Qcow2Builder(4 * units.Mi - 100)
        builder.refcounts_at(2)
        builder.l2(0, 3)
        builder.data(0, 4)
        path = self.path('odd-sectors.qcow2')
        with open(path, 'wb') as image:
            image.write(builder.build())
        fetched = self.fetch_to_raw('file://' + path, 'odd-sectors')
        self.assertStreamed()
        self.assertEqual(4 * units.Mi - 512, fetched.virtual_size)
        self.assertEqual(fetched.virtual_size,
                         os.path.getsize(self.dest('odd-sectors')))
        self.assertSameRaw(self.reference(path), self.dest('odd-sectors'))

    def test_fetch_to_volume_format_raw_streams(self):
        path = self.make('resized')
        expected = self.reference(path)
        self.convert.reset_mock()
        self.execute.reset_mock()
        fetched = volume.fetch_to_volume_format(
            None, self.server.url_for(os.path.basename(path)),
            self.dest('volume'), 'raw')
        self.assertStreamed()
        self.assertEqual('raw', fetched.format)
        self.assertSameRaw(expected, self.dest('volume'))
        self.assertOnly(['volume'])


class TestFallbackAndRefusals(variants.Qcow2StreamTestCase):

    def href(self, path):
        return 'file://' + path

    def test_4k_clusters_are_converted_by_qemu_img(self):
        path = self.make('cluster-4k')
        header, why = qcow2_stream.streamable_header(
            open(path, 'rb').read(qcow2_stream.HEADER_BYTES))
        self.assertIsNone(header)
        self.assertIn('cluster size', why)
        fetched = self.fetch_to_raw(self.href(path), 'disk')
        self.assertEqual(1, self.convert.call_count)
        self.assertIn('convert', self.qemu_img_commands())
        self.assertEqual('raw', fetched.format)
        self.assertSameRaw(self.reference(path), self.dest('disk'))
        self.assertOnly(['disk'])

    def test_streaming_turned_off(self):
        self.config(stream_qcow2=False, group='image_convert')
        self.useFixture(fixtures.MockPatchObject(
            image_sink, 'WRITE_BEHIND_BYTES', 4096))
        fadvise = self.useFixture(fixtures.MockPatchObject(
            outputs.os, 'posix_fadvise', wraps=os.posix_fadvise)).mock
        path = self.make('zstd')
        fetched = self.fetch_to_raw(self.href(path), 'disk')
        # The qcow2 that qemu-img reads back stays in the page cache.
        fadvise.assert_not_called()
        self.assertEqual(1, self.convert.call_count)
        self.assertEqual('raw', fetched.format)
        self.assertSameRaw(self.reference(path), self.dest('disk'))
        self.assertOnly(['disk'])

    def test_backing_and_data_files_are_refused(self):
        for kind in ('qcow2-backing-file', 'qcow2-data-file'):
            path = images.make_image(kind, self.root, size=variants.SIZE)
            self.assertRaises(exception.ImageUnacceptable,
                              self.fetch_to_raw, self.href(path), kind)
            self.assertEqual([], self.qemu_img_commands(), kind)
            self.assertOnly([])

    def test_guest_disk_starting_with_a_qcow2_header_is_refused(self):
        # A guest whose disk holds a qcow2 image at offset 0: its raw
        # disk would be taken for a qcow2 by the next reader.
        inner = self.fill(self.create('inner.qcow2'))
        raw = os.path.join(self.work, 'guest.raw')
        with open(inner, 'rb') as src, open(raw, 'wb') as out:
            out.write(src.read())
            out.truncate(variants.SIZE)
        for variant, options in (('streamed', ()),
                                 ('qemu-img', ('-o', 'cluster_size=4k'))):
            path = self.path('guest-%s.qcow2' % variant)
            images.qemu_img('convert', '-f', 'raw', '-O', 'qcow2', *options,
                            raw, path)
            error = self.assertRaises(exception.ImageConvertFailed,
                                      self.fetch_to_raw, self.href(path),
                                      variant)
            self.assertIn('qcow2', str(error))
            self.assertEqual(0 if variant == 'streamed' else 1,
                             self.convert.call_count)
            self.assertOnly([])

    def test_refused_mid_stream_leaves_no_open_file(self):
        # The decoder refuses this image while it arrives (its first L2
        # entry maps the L2 table's own cluster, already used as a table).
        path = self.make('default')
        fields = variants.qcow2_fields(path)
        with open(path, 'r+b') as f:
            f.seek(fields['l1_offset'])
            l2 = struct.unpack('>Q', f.read(8))[0] & 0x00fffffffffffe00
            f.seek(l2)
            f.write(struct.pack('>Q', (1 << 63) | l2))
        # Not even the garbage collector may be needed to close the spill
        # file (an unnamed file whose space stays in use while open).
        gc.disable()
        self.addCleanup(gc.enable)
        error = self.assertRaises(exception.ImageUnacceptable,
                                  self.fetch_to_raw, self.href(path), 'disk')
        self.assertIn('used twice', str(error))
        self.assertStreamed()
        self.assertEqual([], variants.open_files(self.dest_dir))
        self.assertOnly([])

    def test_virtual_size_larger_than_free_space(self):
        path = self.fill(self.create('big.qcow2', 64 * units.Mi))
        self.assertLess(os.path.getsize(path), 2 * units.Mi)
        real_statvfs = os.statvfs
        dest_dir = self.dest_dir

        def two_mib_free(directory):
            result = real_statvfs(directory)
            if os.path.abspath(directory) != dest_dir:
                return result
            # f_bavail (index 4) in blocks of f_frsize (index 1).
            return os.statvfs_result(result[:4] + (
                2 * units.Mi // result[1],) + result[5:])

        self.useFixture(fixtures.MonkeyPatch('os.statvfs', two_mib_free))
        decoder = self.useFixture(fixtures.MockPatchObject(
            qcow2_stream, 'Qcow2ToRaw', wraps=qcow2_stream.Qcow2ToRaw)).mock
        pwrite = self.useFixture(fixtures.MockPatchObject(
            image_sink.ImageSink, '_pwrite', autospec=True,
            side_effect=image_sink.ImageSink._pwrite)).mock
        error = self.assertRaises(exception.InsufficientDiskSpace,
                                  self.fetch_to_raw, self.href(path), 'disk')
        self.assertIn('64', str(error))
        self.assertEqual(0, decoder.call_count)
        self.assertEqual(0, pwrite.call_count)
        self.assertEqual([], self.qemu_img_commands())
        self.assertOnly([])


class TestInterruptedDownload(variants.Qcow2StreamTestCase):
    """A dropped connection mid-image: resumed, or restarted from 0."""

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(faults.FaultServerFixture())

    def check(self, path, ranges, cuts):
        expected = self.reference(path)
        url = self.server.add('/disk.qcow2', file=path, ranges=ranges)
        self.server.script('/disk.qcow2', cuts, method='GET')
        fetched = self.fetch_to_raw(url, 'disk')
        self.assertStreamed()
        self.assertEqual('raw', fetched.format)
        self.assertSameRaw(expected, self.dest('disk'))
        self.assertOnly(['disk'])
        gets = self.server.requests_for('/disk.qcow2', 'GET')
        self.assertEqual(len(cuts) + 1, len(gets))
        return gets

    def test_reset_then_resumed(self):
        path = self.make('resized')
        size = os.path.getsize(path)
        gets = self.check(path, True,
                          [faults.cut(size // 2 + 12345, reset=True)])
        self.assertIsNotNone(gets[-1].header('range'))

    def test_cut_then_restarted_from_the_start(self):
        # Without Range the sink rewinds: the decoder starts over, with
        # clusters spilled and compressed data carried by the first try.
        rewinds = self.useFixture(fixtures.MockPatchObject(
            image_sink.ImageSink, 'seek', autospec=True,
            side_effect=image_sink.ImageSink.seek)).mock
        self.check(self.make('zstd'), False,
                   [faults.cut(300001), faults.cut(150000)])
        self.assertEqual(2, rewinds.call_count)

    def test_failed_download_leaves_no_open_file(self):
        # The resized image spills its first clusters; the transfer then
        # fails for good.
        self.config(retries=0, group='download')
        path = self.make('resized')
        url = self.server.add('/disk.qcow2', file=path)
        self.server.script('/disk.qcow2', [faults.cut(300000)],
                           method='GET')
        gc.disable()
        self.addCleanup(gc.enable)
        self.assertRaises(exception.ImageDownloadFailed, self.fetch_to_raw,
                          url, 'disk')
        self.assertEqual([], variants.open_files(self.dest_dir))
        self.assertOnly([])
