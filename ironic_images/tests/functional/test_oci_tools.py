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

"""Disk images as skopeo and oras-py push them, into the real registry.

A KubeVirt containerDisk, a ``docker save`` archive, an oras directory
push, a docker schema2 image, a docker manifest list and an oras artifact
rewritten by skopeo: each is pulled through identify_specific_image,
show, download, fetch_to_raw and the ``ironic-images`` command, and the
disk written is compared with the source by ``qemu-img compare``. Tar
layers that hold no single safe disk are refused with nothing left at
the destination.
"""

import io
import json
import os
import subprocess
import sys
import tarfile

from oslo_utils import units

from ironic_images import exception
from ironic_images.fetch import fetcher
from ironic_images.image_service import oci
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import oci_tools
from ironic_images.tests.functional import test_oci_basic as common

SIZE = 4 * units.Mi


class ToolsTestCase(common.OciTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.registry()
        self.service = oci.OciImageService()
        self.work = os.path.join(self.tmp, 'work')
        os.mkdir(self.work)
        self.raw = images.make_raw(self.work, SIZE)
        self.qcow2 = os.path.join(self.work, 'disk.qcow2')
        images.qemu_img('convert', '-f', 'raw', '-O', 'qcow2', self.raw,
                        self.qcow2)

    def assertSameDisk(self, path, source=None):
        images.qemu_img('compare', '-q', '-f', 'raw', path,
                        source or self.raw)

    def assertPulls(self, href, compression, disk_format, archive,
                    sources, filename=None, cpu_arch=None):
        """identify, show, download, fetch_to_raw and the CLI agree."""
        info = self.service.identify_specific_image(href, cpu_arch=cpu_arch)
        self.assertEqual(
            (compression, disk_format, archive, filename),
            (info['image_compression_type'], info['image_disk_format'],
             info['image_archive_format'], info['image_filename']))
        self.assertEqual(sources, info['image_info_sources'])
        manifest_url = info['oci_image_manifest_url']
        shown = self.service.show(manifest_url)
        self.assertEqual(info['image_container_blob_digest'],
                         shown['digest'])
        self.assertEqual(info['image_media_type'], shown['media_type'])
        self.assertEqual(compression, shown['compression'])
        # download: the blob as the registry stores it, digest verified.
        blob = self.download(manifest_url, name='blob')
        self.assertEqual(info['image_container_blob_digest'],
                         oci_push.sha256_digest(blob))
        self.assertEqual(info['image_size'], len(blob))
        # fetch_to_raw: the disk, out of its compression and tar layer.
        dest = os.path.join(self.dest_dir, 'disk.raw')
        fetched = fetcher.fetch_to_raw(None, href, dest, cpu_arch=cpu_arch)
        self.assertEqual('raw', fetched.format)
        self.assertEqual(info['image_container_blob_digest'],
                         fetched.checksum)
        self.assertEqual(compression, fetched.compression)
        self.assertSameDisk(dest)
        os.unlink(dest)
        return info, fetched

    def run_cli(self, *args):
        conf = os.path.join(self.tmp, 'cli.conf')
        with open(conf, 'w') as f:
            f.write('[oci]\npermit_fallback_to_http_transport = true\n')
        return subprocess.run(
            [sys.executable, '-m', 'ironic_images.cmd.main',
             '--config-file', conf] + list(args),
            capture_output=True, text=True, timeout=120)

    def assertCliFetches(self, href, shown_digest=None):
        dest = os.path.join(self.dest_dir, 'cli.raw')
        result = self.run_cli('fetch', '--raw', href, dest)
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertSameDisk(dest)
        if shown_digest:
            result = self.run_cli('show', shown_digest, '-f', 'json')
            self.assertEqual(0, result.returncode, result.stderr)
            self.assertIn('media_type', json.loads(result.stdout))


class TestSkopeo(ToolsTestCase):

    def push_layout(self, name, layers, *options, architectures=('amd64',)):
        layout = oci_tools.oci_layout(os.path.join(self.work, name), layers,
                                      architectures=architectures)
        oci_tools.skopeo_copy('oci:%s:v1' % layout, self.server.host,
                              '%s:v1' % name, *options)
        return self.server.oci_url(name, 'v1')

    def test_container_disk(self):
        # KubeVirt's containerDisk: FROM scratch, ADD disk.qcow2 /disk/.
        # skopeo gzips the uncompressed layer on the way.
        href = self.push_layout(
            'kubevirt/disk', [oci_tools.container_disk_layer(self.qcow2)])
        info, fetched = self.assertPulls(
            href, 'gzip', 'qcow2', 'tar',
            {'image_filename': 'inspection',
             'image_compression_type': 'media_type',
             'image_disk_format': 'inspection',
             'image_archive_format': 'inspection'}, filename='disk.qcow2')
        self.assertEqual('application/vnd.oci.image.layer.v1.tar+gzip',
                         info['image_media_type'])
        self.assertEqual('disk/disk.qcow2', fetched.member)
        self.assertEqual('qcow2', fetched.source_format)
        self.assertCliFetches(href, info['oci_image_manifest_url'])

    def test_container_disk_raw_preserving_digests(self):
        # --preserve-digests: the layer stays an uncompressed tar.
        layer = oci_tools.container_disk_layer(self.raw, 'disk.img')
        href = self.push_layout('kubevirt/raw', [layer],
                                '--preserve-digests')
        info, fetched = self.assertPulls(
            href, None, 'raw', 'tar',
            {'image_filename': 'inspection',
             'image_compression_type': None,
             'image_disk_format': 'inspection',
             'image_archive_format': 'inspection'}, filename='disk.img')
        self.assertEqual(oci_tools.digest_of(layer),
                         info['image_container_blob_digest'])
        self.assertEqual('disk/disk.img', fetched.member)

    def test_docker_archive(self):
        # FROM scratch, COPY disk.raw /, docker save: a docker schema2
        # image whose layer holds the one file.
        archive = oci_tools.docker_archive(
            os.path.join(self.work, 'image.tar'),
            oci_tools.tar_layer({'disk.raw': self.raw}))
        oci_tools.skopeo_copy('docker-archive:%s' % archive,
                              self.server.host, 'docker/disk:v1')
        href = self.server.oci_url('docker/disk', 'v1')
        info, fetched = self.assertPulls(
            href, 'gzip', 'raw', 'tar',
            {'image_filename': 'inspection',
             'image_compression_type': 'media_type',
             'image_disk_format': 'inspection',
             'image_archive_format': 'inspection'}, filename='disk.raw')
        self.assertEqual(oci_tools.DOCKER_LAYER_GZIP,
                         info['image_media_type'])
        self.assertEqual('disk.raw', fetched.member)
        self.assertCliFetches(href)

    def test_docker_schema2(self):
        href = self.push_layout(
            'v2s2/disk', [oci_tools.container_disk_layer(self.qcow2)],
            '--format', 'v2s2')
        info, _fetched = self.assertPulls(
            href, 'gzip', 'qcow2', 'tar',
            {'image_filename': 'inspection',
             'image_compression_type': 'media_type',
             'image_disk_format': 'inspection',
             'image_archive_format': 'inspection'}, filename='disk.qcow2')
        self.assertEqual(oci_tools.DOCKER_LAYER_GZIP,
                         info['image_media_type'])
        manifest = self.service.client.get_manifest(
            info['oci_image_manifest_url'])
        self.assertEqual(oci_tools.DOCKER_MANIFEST, manifest['mediaType'])

    def test_docker_manifest_list(self):
        arm_raw = images.make_raw(self.work, 2 * units.Mi)
        href = self.push_layout(
            'list/disk', [oci_tools.container_disk_layer(self.qcow2),
                          oci_tools.container_disk_layer(arm_raw,
                                                         'disk.img')],
            '--all', '--format', 'v2s2', architectures=('amd64', 'arm64'))
        index = self.service.client.get_manifest(href)
        self.assertEqual(oci_tools.DOCKER_LIST, index['mediaType'])
        sources = {'image_filename': 'inspection',
                   'image_compression_type': 'media_type',
                   'image_disk_format': 'inspection',
                   'image_archive_format': 'inspection'}
        self.assertPulls(href, 'gzip', 'qcow2', 'tar', sources,
                         filename='disk.qcow2', cpu_arch='x86_64')
        self.raw = arm_raw
        self.assertPulls(href, 'gzip', 'raw', 'tar', sources,
                         filename='disk.img', cpu_arch='aarch64')

    def test_oras_artifact_rewritten_by_skopeo(self):
        # An artifact pushed with an image config is an image to skopeo:
        # it gzips the plain-file layer and drops its title annotation.
        config = os.path.join(self.work, 'config.json')
        with open(config, 'wb') as f:
            f.write(oci_tools.image_config(b''))
        oci_tools.oras_push(self.server, 'oras/plain:v1', [self.qcow2],
                            manifest_config=config + ':'
                            + oci_tools.OCI_CONFIG)
        oci_tools.skopeo_copy('docker://%s/oras/plain:v1' % self.server.host,
                              self.server.host, 'copied/plain:v1')
        href = self.server.oci_url('copied/plain', 'v1')
        info, fetched = self.assertPulls(
            href, 'gzip', 'qcow2', None,
            {'image_filename': None,
             'image_compression_type': 'media_type',
             'image_disk_format': 'inspection',
             'image_archive_format': None})
        self.assertEqual('application/vnd.oci.image.layer.v1.tar+gzip',
                         info['image_media_type'])
        self.assertIsNone(fetched.member)


class TestOras(ToolsTestCase):

    def test_file(self):
        oci_tools.oras_push(self.server, 'oras/file:v1', [self.qcow2])
        href = self.server.oci_url('oras/file', 'v1')
        _info, fetched = self.assertPulls(
            href, None, 'qcow2', None,
            {'image_filename': 'annotation',
             'image_compression_type': None,
             'image_disk_format': 'filename',
             'image_archive_format': None}, filename='disk.qcow2')
        self.assertIsNone(fetched.member)
        self.assertCliFetches(href)

    def test_directory(self):
        # oras pushes a directory as a tar+gzip layer titled by its name.
        directory = os.path.join(self.work, 'images')
        os.mkdir(directory)
        os.link(self.qcow2, os.path.join(directory, 'fedora.qcow2'))
        oci_tools.oras_push(self.server, 'oras/dir:v1', [directory])
        href = self.server.oci_url('oras/dir', 'v1')
        info, fetched = self.assertPulls(
            href, 'gzip', 'qcow2', 'tar',
            {'image_filename': 'annotation',
             'image_compression_type': 'media_type',
             'image_disk_format': 'inspection',
             'image_archive_format': 'inspection'}, filename='images')
        self.assertEqual('images/fedora.qcow2', fetched.member)
        self.assertCliFetches(href)


class TestUnsafeLayers(ToolsTestCase):
    """Tar layers that are not one safe disk: refused, nothing written."""

    def assertRefused(self, layer, *words):
        art = oci_push.push_artifact(
            self.server, 'bad/disk', None, layer, None,
            media_type='application/vnd.oci.image.layer.v1.tar')
        href = self.server.oci_url('bad/disk', art.manifest_digest)
        dest = os.path.join(self.dest_dir, 'disk.raw')
        for fetch in (fetcher.fetch, fetcher.fetch_to_raw):
            error = self.assertRaises(exception.ImageUnacceptable, fetch,
                                      None, href, dest)
            for word in words + (art.blob_digest,):
                self.assertIn(word, str(error))
            self.assertEqual([], os.listdir(self.dest_dir))

    def test_two_disks(self):
        self.assertRefused(oci_tools.tar_layer(
            {'disk/a.qcow2': self.qcow2, 'disk/b.img': self.raw}),
            'several disks')

    def test_parent_directory_names(self):
        self.assertRefused(oci_tools.tar_layer(
            {'disk/../../disk.img': self.raw}), 'leaves the archive')

    def test_symlink_as_the_disk(self):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode='w') as tar:
            info = tarfile.TarInfo('disk/disk.qcow2')
            info.type, info.linkname = tarfile.SYMTYPE, '/dev/sda'
            tar.addfile(info)
        self.assertRefused(out.getvalue(), 'symbolic link')

    def test_no_disk(self):
        self.assertRefused(oci_tools.tar_layer({}, directories=['disk/']),
                           'no regular file')
