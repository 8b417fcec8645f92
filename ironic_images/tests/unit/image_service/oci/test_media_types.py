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

from ironic_images.image_service.oci import media_types
from ironic_images.tests import base

OCI_TAR = 'application/vnd.oci.image.layer.v1.tar'
DOCKER_TAR = 'application/vnd.docker.image.rootfs.diff.tar'


class TestMediaTypes(base.TestCase):

    def test_compression(self):
        for media_type, filename, expected in (
                ('application/zstd', None, ('zstd', 'media_type')),
                ('application/gzip', 'disk.raw', ('gzip', 'media_type')),
                ('application/x-gzip', None, ('gzip', 'media_type')),
                ('application/x-xz', None, ('xz', 'media_type')),
                ('APPLICATION/ZSTD; x=1', None, ('zstd', 'media_type')),
                (OCI_TAR + '+zstd', None, ('zstd', 'media_type')),
                (OCI_TAR + '+gzip', None, ('gzip', 'media_type')),
                ('application/vnd.oci.image.layer.nondistributable.v1.tar'
                 '+gzip', None, ('gzip', 'media_type')),
                # What docker push and skopeo --format v2s2 make.
                (DOCKER_TAR + '.gzip', None, ('gzip', 'media_type')),
                ('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
                 None, ('gzip', 'media_type')),
                (DOCKER_TAR + '.zstd', None, ('zstd', 'media_type')),
                (OCI_TAR, 'd.raw.zst', ('zstd', 'filename')),
                ('application/octet-stream', 'd.qcow2.zstd',
                 ('zstd', 'filename')),
                (None, 'd.img.gz', ('gzip', 'filename')),
                (None, 'd.img.xz', ('xz', 'filename')),
                (OCI_TAR, 'd.qcow2', (None, None)),
                (DOCKER_TAR, None, (None, None)),
                (None, None, (None, None)), ('', '', (None, None))):
            self.assertEqual(expected, tuple(media_types.compression(
                media_type, filename)), (media_type, filename))

    def test_disk_format_of_name(self):
        for filename, expected in (
                ('disk.qcow2', 'qcow2'), ('disk.img', 'raw'),
                ('disk.raw', 'raw'), ('disk.raw.zst', 'raw'),
                ('DISK.QCOW2.GZ', 'qcow2'), ('d.img.zstd', 'raw'),
                ('disk/fedora.qcow2', 'qcow2'), ('d.iso', 'iso'),
                ('d.vmdk', 'vmdk'), ('disk', None), (None, None),
                ('layer.tar', None), ('disk.bin', None)):
            self.assertEqual(expected,
                             media_types.disk_format_of_name(filename),
                             filename)
