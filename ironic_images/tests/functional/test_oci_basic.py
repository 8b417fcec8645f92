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

"""OciImageService against Debian's docker-registry, anonymous access.

A multi-arch index (qcow2, raw, raw.zst), ORAS-style single manifests,
tags, missing tags, repositories and blobs, and corrupted blobs.
:class:`OciTestCase` is the base of every functional oci:// test: auth and
TLS are in test_oci_auth, Bearer tokens in test_oci_tokens, redirects,
rate limits and mirrors in test_oci_faults.
"""

import hashlib
import os

import fixtures
from oslo_utils import units

from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service import oci
from ironic_images.image_service.oci import client as oci_client
from ironic_images.tests import base
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import registry
from ironic_images.transfer import http_client

REPO = 'os/disk'
# Not a multiple of the 64 KiB chunks the tests use: several chunks.
RAW = os.urandom(units.Mi + 12345)
QCOW2 = os.urandom(300 * units.Ki + 7)
RAW_ZST = os.urandom(100 * units.Ki + 3)
ARM_QCOW2 = os.urandom(200 * units.Ki + 11)
ARM_RAW_ZST = os.urandom(150 * units.Ki + 5)
FILES = {'amd64': {'qcow2': QCOW2, 'raw': RAW, 'raw.zst': RAW_ZST},
         'arm64': {'raw.zst': ARM_RAW_ZST, 'qcow2': ARM_QCOW2}}


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class OciTestCase(base.TestCase):
    """Temp dirs, fast retries, small chunks, registry and download helpers.

    Downloads go to ``self.dest_dir`` through
    :func:`fileutils.atomic_write`, as a real caller does.
    """

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(60, gentle=True))
        self.useFixture(fixtures.MockPatchObject(http_client, 'BACKOFF_BASE',
                                                 0.01))
        self.config(webserver_connection_timeout=5)
        self.config(chunk_size=64 * units.Ki, retries=2, group='download')
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.dest_dir = os.path.join(self.tmp, 'dest')
        os.mkdir(self.dest_dir)

    def registry(self, **kwargs):
        """Start a registry and point the [oci] options at it."""
        server = self.useFixture(registry.RegistryFixture(**kwargs))
        if kwargs.get('tls'):
            self.config(verify_ca=kwargs['tls'].ca_cert, group='oci')
        else:
            self.config(permit_fallback_to_http_transport=True, group='oci')
        return server

    def push_index(self, server, tags=('v1', 'latest'), repo=REPO,
                   files=None):
        return oci_push.push_disk_image_fixture(server, repo, list(tags),
                                                files or FILES)

    def download(self, href, service=None, name='disk.img', **kwargs):
        """Download into dest_dir/name atomically; return the bytes."""
        dest = os.path.join(self.dest_dir, name)
        service = service or oci.OciImageService()
        with fileutils.atomic_write(dest) as image_file:
            service.download(href, image_file, **kwargs)
        with open(dest, 'rb') as f:
            return f.read()

    def assertDownloads(self, href, data, service=None, **kwargs):
        """Download; compare bytes and the verified digest with data."""
        service = service or oci.OciImageService()
        written = self.download(href, service=service, **kwargs)
        self.assertEqual(len(data), len(written))
        self.assertEqual(sha256(data), sha256(written))
        self.assertEqual('sha256:' + sha256(data),
                         service.transfer_verified_checksum)
        return written

    def assertDownloadFails(self, error_class, href, service=None,
                            name='disk.img'):
        """A failed download leaves no file and no .part behind."""
        error = self.assertRaises(error_class, self.download, href,
                                  service=service, name=name)
        self.assertFalse(os.path.exists(os.path.join(self.dest_dir, name)))
        self.assertEqual([], os.listdir(self.dest_dir))
        return error


class TestMultiArchIndex(OciTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.registry()
        self.pushed = self.push_index(self.server)
        self.href = self.server.oci_url(REPO, 'v1')
        self.service = oci.OciImageService()

    def artifact(self, arch, kind):
        return self.pushed.artifacts[arch][kind]

    def assertIdentifies(self, info, arch, kind, compression=None,
                         disk_format=None):
        art = self.artifact(arch, kind)
        self.assertEqual(
            {'image_url': '%s/v2/%s/blobs/%s' % (self.server.url, REPO,
                                                 art.blob_digest),
             'image_size': art.blob_size,
             'image_filename': 'disk-%s.%s' % (arch, kind),
             'image_checksum': art.blob_digest.partition(':')[2],
             'image_container_blob_digest': art.blob_digest,
             'image_media_type': art.media_type,
             'image_compression_type': compression,
             'image_disk_format': disk_format or kind.split('.')[0],
             'image_archive_format': None,
             'image_info_sources': {
                 'image_filename': 'annotation',
                 'image_compression_type': compression and 'media_type',
                 'image_disk_format': 'annotation',
                 'image_archive_format': None},
             'image_request_authorization_secret': None,
             'oci_image_manifest_url': self.server.oci_url(
                 REPO, art.manifest_digest)},
            info)

    def test_amd64_prefers_raw(self):
        for arch in ('amd64', 'x86_64', 'AMD64'):
            info = self.service.identify_specific_image(self.href,
                                                        cpu_arch=arch)
            self.assertIdentifies(info, 'amd64', 'raw')

    def test_arm64_prefers_raw_zst(self):
        for arch in ('arm64', 'aarch64'):
            info = self.service.identify_specific_image(
                self.href, image_download_source='http', cpu_arch=arch)
            self.assertIdentifies(info, 'arm64', 'raw.zst',
                                  compression='zstd', disk_format='raw')

    def test_local_prefers_qcow2(self):
        for arch in ('amd64', 'x86_64'):
            info = self.service.identify_specific_image(
                self.href, image_download_source='local', cpu_arch=arch)
            self.assertIdentifies(info, 'amd64', 'qcow2')
        info = self.service.identify_specific_image(
            self.href, image_download_source='local', cpu_arch='aarch64')
        self.assertIdentifies(info, 'arm64', 'qcow2')

    def test_no_arch_takes_first_best(self):
        info = self.service.identify_specific_image(self.href)
        self.assertIdentifies(info, 'amd64', 'raw')

    def test_no_match(self):
        for arch in ('s390x', 'ppc64le'):
            self.assertEqual({}, self.service.identify_specific_image(
                self.href, cpu_arch=arch))

    def test_index_by_digest(self):
        href = self.server.oci_url(REPO, self.pushed.index_digest)
        info = self.service.identify_specific_image(href, cpu_arch='arm64')
        self.assertIdentifies(info, 'arm64', 'raw.zst',
                              compression='zstd', disk_format='raw')

    def test_identify_then_download(self):
        for arch, kind, data in (('amd64', 'raw', RAW),
                                 ('arm64', 'raw.zst', ARM_RAW_ZST)):
            info = self.service.identify_specific_image(self.href,
                                                        cpu_arch=arch)
            service = oci.OciImageService()
            self.assertDownloads(info['oci_image_manifest_url'], data,
                                 service=service)
            self.assertEqual(info['image_container_blob_digest'],
                             service.transfer_verified_checksum)
            os.unlink(os.path.join(self.dest_dir, 'disk.img'))

    def test_download_progress(self):
        art = self.artifact('amd64', 'raw')
        calls = []
        self.assertDownloads(self.server.oci_url(REPO, art.manifest_digest),
                             RAW, progress=lambda *a: calls.append(a))
        self.assertEqual((len(RAW), len(RAW)), calls[-1])
        self.assertGreater(len(calls), 1)

    def test_show(self):
        art = self.artifact('amd64', 'qcow2')
        href = self.server.oci_url(REPO, art.manifest_digest)
        expected = {
            'size': len(QCOW2), 'checksum': sha256(QCOW2),
            'digest': 'sha256:' + sha256(QCOW2),
            'media_type': oci_push.LAYER_TAR,
            'compression': None, 'disk_format': 'qcow2',
            'filename': 'disk-amd64.qcow2', 'updated_at': None,
            'properties': {oci_push.TITLE: 'disk-amd64.qcow2'},
            'no_cache': False}
        self.assertEqual(expected, self.service.show(href))
        self.assertEqual(expected, self.service.validate_href(href))

    def test_show_and_download_need_a_digest(self):
        for href in (self.href, self.server.oci_url(REPO, 'latest'),
                     self.server.oci_url(REPO)):
            self.assertRaises(exception.OciImageNotSpecific,
                              self.service.show, href)
            self.assertDownloadFails(exception.OciImageNotSpecific, href)

    def test_index_digest_is_not_specific(self):
        href = self.server.oci_url(REPO, self.pushed.index_digest)
        self.assertRaises(exception.OciImageNotSpecific,
                          self.service.show, href)
        self.assertDownloadFails(exception.OciImageNotSpecific, href)

    def test_several_tags(self):
        oci_push.push_manifest(self.server.url, REPO, 'stable',
                               self.pushed.index_bytes, oci_push.INDEX)
        client = oci_client.OciClient()
        self.assertEqual(['latest', 'stable', 'v1'],
                         sorted(client.get_tags(self.href)))
        results = [self.service.identify_specific_image(
            self.server.oci_url(REPO, tag), cpu_arch='amd64')
            for tag in ('v1', 'latest', 'stable')]
        self.assertEqual([results[0]] * 3, results)
        index = client.get_artifact_index(self.server.oci_url(REPO,
                                                              'stable'))
        self.assertEqual(self.pushed.index, index)

    def test_missing_tag_lists_tags(self):
        href = self.server.oci_url(REPO, 'v2')
        error = self.assertRaises(exception.OciImageTagNotFound,
                                  self.service.identify_specific_image, href)
        self.assertEqual('latest, v1', error.kwargs['tags'])
        self.assertIn('latest, v1', str(error))
        self.assertIn('v2', str(error))

    def test_missing_repository(self):
        art = self.artifact('amd64', 'raw')
        href = self.server.oci_url('os/other', art.manifest_digest)
        self.assertRaises(exception.ImageNotFound, self.service.show, href)
        self.assertDownloadFails(exception.ImageNotFound, href)
        self.assertRaises(exception.ImageNotFound,
                          self.service.identify_specific_image,
                          self.server.oci_url('os/other', 'v1'))

    def test_missing_manifest_digest(self):
        href = self.server.oci_url(REPO, 'sha256:' + sha256(b'nothing'))
        error = self.assertRaises(exception.ImageNotFound,
                                  self.service.show, href)
        self.assertNotIsInstance(error, exception.OciImageTagNotFound)

    def test_missing_blob(self):
        art = self.artifact('amd64', 'qcow2')
        oci_push.delete_blob(self.server.url, REPO, art.blob_digest)
        href = self.server.oci_url(REPO, art.manifest_digest)
        # The manifest is still there; its blob is not.
        self.assertEqual(len(QCOW2), self.service.show(href)['size'])
        self.assertDownloadFails(exception.ImageNotFound, href)

    def test_corrupted_blob(self):
        art = self.artifact('amd64', 'raw')
        with open(self.server.blob_path(art.blob_digest), 'r+b') as f:
            f.seek(len(RAW) // 2)
            f.write(b'\0corrupted\0')
        href = self.server.oci_url(REPO, art.manifest_digest)
        service = oci.OciImageService()
        error = self.assertDownloadFails(exception.ImageChecksumError, href,
                                         service=service)
        self.assertIn(sha256(RAW), str(error))
        self.assertIsNone(service.transfer_verified_checksum)

    def test_blob_of_another_size(self):
        art = self.artifact('amd64', 'qcow2')
        with open(self.server.blob_path(art.blob_digest), 'ab') as f:
            f.write(b'more')
        href = self.server.oci_url(REPO, art.manifest_digest)
        self.assertDownloadFails(exception.ImageDownloadFailed, href)

    def test_driver_is_loaded_for_oci(self):
        self.assertTrue(image_service.is_container_registry_url(self.href))
        service = image_service.get_image_service(self.href)
        self.assertIsInstance(service, oci.OciImageService)
        art = self.artifact('arm64', 'qcow2')
        self.assertDownloads(self.server.oci_url(REPO, art.manifest_digest),
                             ARM_QCOW2, service=service)


class TestSingleManifest(OciTestCase):
    """ORAS-style artifacts: a manifest with one layer, no index."""

    def setUp(self):
        super().setUp()
        self.server = self.registry()
        self.service = oci.OciImageService()

    def test_by_tag_and_digest(self):
        art = oci_push.push_artifact(self.server, 'oras/disk',
                                     ['v1', 'stable'], QCOW2, 'disk.qcow2')
        digest_href = self.server.oci_url('oras/disk', art.manifest_digest)
        for href in (self.server.oci_url('oras/disk', 'v1'),
                     self.server.oci_url('oras/disk', 'stable'),
                     digest_href):
            info = self.service.identify_specific_image(href,
                                                        cpu_arch='aarch64')
            self.assertEqual(digest_href, info['oci_image_manifest_url'])
            self.assertEqual(art.blob_digest,
                             info['image_container_blob_digest'])
            self.assertEqual(len(QCOW2), info['image_size'])
            self.assertEqual('disk.qcow2', info['image_filename'])
            self.assertEqual('qcow2', info['image_disk_format'])
            self.assertIsNone(info['image_compression_type'])
        self.assertEqual(len(QCOW2), self.service.show(digest_href)['size'])
        self.assertDownloads(digest_href, QCOW2)
        client = oci_client.OciClient()
        with open(os.path.join(self.tmp, 'direct'), 'wb') as f:
            self.assertEqual(art.blob_digest,
                             client.download_blob_from_manifest(
                                 self.server.oci_url('oras/disk', 'v1'), f))
        with open(os.path.join(self.tmp, 'direct'), 'rb') as f:
            self.assertEqual(sha256(QCOW2), sha256(f.read()))

    def test_compressed_raw(self):
        art = oci_push.push_artifact(self.server, 'oras/raw', 'v1', RAW_ZST,
                                     'disk.raw.gz', media_type=oci_push.GZIP)
        info = self.service.identify_specific_image(
            self.server.oci_url('oras/raw', 'v1'))
        self.assertEqual('gzip', info['image_compression_type'])
        self.assertEqual('raw', info['image_disk_format'])
        self.assertEqual(oci_push.GZIP, info['image_media_type'])
        self.assertDownloads(info['oci_image_manifest_url'], RAW_ZST)
        self.assertEqual(self.server.oci_url('oras/raw', art.manifest_digest),
                         info['oci_image_manifest_url'])

    def test_default_tag_is_latest(self):
        oci_push.push_artifact(self.server, 'oras/disk', 'latest', QCOW2,
                               'disk.qcow2')
        info = self.service.identify_specific_image(
            self.server.oci_url('oras/disk'))
        self.assertDownloads(info['oci_image_manifest_url'], QCOW2)

    def test_manifest_of_several_layers(self):
        blob = oci_push.push_blob(self.server.url, 'oras/two', QCOW2)
        oci_push.push_empty_config(self.server.url, 'oras/two')
        manifest = oci_push.artifact_manifest(blob, len(QCOW2), 'a.qcow2')
        manifest['layers'].append(dict(manifest['layers'][0]))
        digest = oci_push.push_manifest(self.server.url, 'oras/two', 'v1',
                                        manifest, oci_push.MANIFEST)
        href = self.server.oci_url('oras/two', digest)
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.show, href)
        self.assertDownloadFails(exception.ImageRefValidationFailed, href)
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.identify_specific_image,
                          self.server.oci_url('oras/two', 'v1'))

    def test_docker_manifest_list(self):
        art = oci_push.push_artifact(self.server, 'docker/disk', None, RAW,
                                     'disk.raw')
        idx = oci_push.index([(art.manifest_digest, art.manifest_size,
                               'amd64', 'linux', {'disktype': 'raw'})],
                             media_type=oci_push.DOCKER_MANIFEST_LIST)
        oci_push.push_manifest(self.server.url, 'docker/disk', 'v1', idx)
        info = self.service.identify_specific_image(
            self.server.oci_url('docker/disk', 'v1'), cpu_arch='x86_64')
        self.assertEqual(art.blob_digest, info['image_container_blob_digest'])
        self.assertDownloads(info['oci_image_manifest_url'], RAW)


class TestTransport(OciTestCase):

    def test_plain_http_needs_the_fallback_option(self):
        server = self.registry()
        art = oci_push.push_artifact(server, 'oras/disk', 'v1', QCOW2,
                                     'disk.qcow2')
        self.config(permit_fallback_to_http_transport=False, group='oci')
        href = server.oci_url('oras/disk', art.manifest_digest)
        error = self.assertRaises(exception.IronicImagesException,
                                  oci.OciImageService().show, href)
        self.assertIn('TLS', str(error))
        self.assertDownloadFails(exception.IronicImagesException, href)
