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

"""OciImageService: index ranking, formats, show, download, auth."""

import hashlib
import io
import json
from unittest import mock

from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service.oci import client as oci_client
from ironic_images.image_service.oci import driver as oci
from ironic_images.tests import base
from ironic_images.tests.unit.image_service.oci import test_client as common

HOST = common.HOST
INDEX_HREF = 'oci://%s/%s:v1' % (HOST, common.REPO)


def entry(name, arch=None, disktype=None, **extra):
    item = {'mediaType': oci_client.MANIFEST_TYPE,
            'digest': 'sha256:' + hashlib.sha256(name.encode()).hexdigest(),
            'size': 100, 'name': name}
    if arch:
        item['platform'] = {'architecture': arch, 'os': 'linux'}
    if disktype:
        item['annotations'] = {'disktype': disktype}
    item.update(extra)
    return item


def choose(entries, source=None, arch=None):
    chosen = oci._choose({'manifests': entries}, source, arch, 'h')
    return chosen and chosen['name']


class TestChoose(base.TestCase):

    ENTRIES = [entry('amd-qcow2', 'amd64', 'qcow2'),
               entry('amd-raw', 'amd64', 'raw'),
               entry('amd-raw2', 'amd64', 'raw'),
               entry('arm-qcow2', 'arm64', 'qcow2'),
               entry('arm-raw', 'arm64', 'RAW'),
               entry('x86-other', 'x86_64', 'vmdk')]

    def test_raw_first_by_default(self):
        for arch in ('amd64', 'x86_64', 'AMD64', 'X86_64'):
            self.assertEqual('amd-raw', choose(self.ENTRIES, None, arch))
            self.assertEqual('amd-raw', choose(self.ENTRIES, 'http', arch))
        for arch in ('arm64', 'aarch64', 'AArch64'):
            self.assertEqual('arm-raw', choose(self.ENTRIES, 'swift', arch))

    def test_qcow2_first_for_local(self):
        self.assertEqual('amd-qcow2', choose(self.ENTRIES, 'local', 'x86_64'))
        self.assertEqual('arm-qcow2', choose(self.ENTRIES, 'local',
                                             'aarch64'))

    def test_unknown_disktype_last(self):
        entries = [entry('none', 'amd64'), entry('vmdk', 'x86_64', 'vmdk'),
                   entry('qcow2', 'amd64', 'qcow2')]
        self.assertEqual('qcow2', choose(entries, None, 'amd64'))
        self.assertEqual('none', choose(entries[:2], None, 'amd64'))

    def test_platform_aliases_both_ways(self):
        entries = [entry('a', 'x86_64', 'raw'), entry('b', 'aarch64', 'raw')]
        self.assertEqual('a', choose(entries, None, 'amd64'))
        self.assertEqual('b', choose(entries, None, 'arm64'))

    def test_entries_without_platform_pass(self):
        entries = [entry('arm', 'arm64', 'raw'), entry('any', None, 'qcow2')]
        self.assertEqual('any', choose(entries, None, 'amd64'))
        self.assertEqual('arm', choose(entries, None, 'arm64'))
        entries = [entry('p', disktype='raw', platform={})]
        self.assertEqual('p', choose(entries, None, 'amd64'))

    def test_no_arch_keeps_all(self):
        self.assertEqual('amd-raw', choose(self.ENTRIES))
        self.assertEqual('amd-qcow2', choose(self.ENTRIES, 'local'))

    def test_no_match(self):
        self.assertIsNone(choose(self.ENTRIES, None, 's390x'))
        self.assertIsNone(choose([], None, None))

    def test_malformed_index(self):
        for index in ({}, {'manifests': None}, {'manifests': 'x'},
                      {'manifests': [None]}, {'manifests': [{'size': 1}]},
                      {'manifests': ['sha256:' + 'a' * 64]}):
            self.assertRaises(exception.ImageRefValidationFailed,
                              oci._choose, index, None, 'amd64', 'h')

    def test_malformed_entry_fields(self):
        # Never an AttributeError out of identify_specific_image.
        for bad in ({'platform': 'linux/amd64'},
                    {'platform': ['amd64']},
                    {'annotations': ['disktype=raw']},
                    {'annotations': {'disktype': 5}},
                    {'platform': {'architecture': 64}}):
            item = entry('bad', **bad)
            self.assertRaises(exception.ImageRefValidationFailed,
                              oci._choose, {'manifests': [item]}, None,
                              'amd64', 'h')


EMPTY_CONFIG = {'mediaType': 'application/vnd.oci.empty.v1+json',
                'digest': 'sha256:' + hashlib.sha256(b'{}').hexdigest(),
                'size': 2}


def artifact(data, filename, media_type='application/vnd.oci.image.layer'
             '.v1.tar', annotations=True):
    layer = {'mediaType': media_type,
             'digest': 'sha256:' + hashlib.sha256(data).hexdigest(),
             'size': len(data)}
    if annotations is True:
        layer['annotations'] = {'org.opencontainers.image.title': filename}
    elif annotations is not None:
        layer['annotations'] = annotations
    body = json.dumps({'schemaVersion': 2,
                       'mediaType': oci_client.MANIFEST_TYPE,
                       'config': EMPTY_CONFIG,
                       'layers': [layer]}).encode()
    return body, 'sha256:' + hashlib.sha256(body).hexdigest(), layer


class ServiceTestCase(common.ClientTestCase):

    def setUp(self):
        super().setUp()
        self.service = oci.OciImageService()

    def add_artifact(self, data, filename, **kwargs):
        body, digest, layer = artifact(data, filename, **kwargs)
        self.add_manifest(body=body, ref=digest)
        self.add_blob(data=data, digest=layer['digest'])
        return digest, layer

    def add_index(self, entries, ref='v1'):
        """Serve an index under a tag (or its digest when ref is None).

        Entries get the media type and size every descriptor has, unless
        they give their own.
        """
        entries = [dict({'mediaType': oci_client.MANIFEST_TYPE, 'size': 1},
                        **entry) for entry in entries]
        body = json.dumps({'schemaVersion': 2,
                           'mediaType': oci_client.INDEX_TYPE,
                           'manifests': entries}).encode()
        digest = 'sha256:' + hashlib.sha256(body).hexdigest()
        self.add_manifest(body=body, ref=ref or digest,
                          content_type=oci_client.INDEX_TYPE)
        return digest


class TestIdentify(ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.qcow2 = self.add_artifact(b'Q' * 100, 'disk.qcow2')
        self.zst = self.add_artifact(b'Z' * 50, 'disk.raw.zst',
                                     media_type='application/zstd')
        self.index_digest = self.add_index([
            {'digest': self.qcow2[0], 'platform': {'architecture': 'amd64'},
             'annotations': {'disktype': 'qcow2'}},
            {'digest': self.zst[0], 'platform': {'architecture': 'amd64'},
             'annotations': {'disktype': 'raw'}}])

    def test_index(self):
        info = self.service.identify_specific_image(INDEX_HREF,
                                                    cpu_arch='x86_64')
        blob = self.zst[1]['digest']
        self.assertEqual({
            'image_url': common.blob_url(blob),
            'image_size': 50, 'image_filename': 'disk.raw.zst',
            'image_checksum': blob.partition(':')[2],
            'image_container_blob_digest': blob,
            'image_media_type': 'application/zstd',
            'image_compression_type': 'zstd', 'image_disk_format': 'raw',
            'image_archive_format': None,
            'image_info_sources': {
                'image_filename': 'annotation',
                'image_compression_type': 'media_type',
                'image_disk_format': 'annotation',
                'image_archive_format': None},
            'image_request_authorization_secret': None,
            'oci_image_manifest_url': 'oci://%s/%s@%s' % (
                HOST, common.REPO, self.zst[0])}, info)

    def test_local(self):
        info = self.service.identify_specific_image(INDEX_HREF, 'local')
        self.assertEqual('disk.qcow2', info['image_filename'])
        self.assertEqual('qcow2', info['image_disk_format'])
        self.assertIsNone(info['image_compression_type'])

    def test_no_match(self):
        self.assertEqual({}, self.service.identify_specific_image(
            INDEX_HREF, cpu_arch='aarch64'))

    def test_single_manifest(self):
        href = 'oci://%s/%s@%s' % (HOST, common.REPO, self.qcow2[0])
        info = self.service.identify_specific_image(href, cpu_arch='s390x')
        self.assertEqual(href, info['oci_image_manifest_url'])
        self.assertEqual('qcow2', info['image_disk_format'])

    def test_auth_secret(self):
        self.service.client.registry._authorization[
            (HOST, common.REPO)] = 'Bearer t'
        info = self.service.identify_specific_image(INDEX_HREF)
        self.assertEqual('Bearer t',
                         info['image_request_authorization_secret'])

    def test_index_entry_with_a_bad_digest(self):
        self.add_index([{'digest': 'sha256:nothex'}], ref='bad')
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.identify_specific_image,
                          INDEX_HREF.replace(':v1', ':bad'))

    def test_layer_annotations_not_an_object(self):
        digest, _layer = self.add_artifact(b'A' * 10, None,
                                           annotations=['title=x'])
        href = 'oci://%s/%s@%s' % (HOST, common.REPO, digest)
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.identify_specific_image, href)
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.show, href)


class TestShowDownload(ServiceTestCase):

    def setUp(self):
        super().setUp()
        self.data = b'D' * 3000
        self.digest, self.layer = self.add_artifact(self.data, 'disk.raw')
        self.href = 'oci://%s/%s@%s' % (HOST, common.REPO, self.digest)

    def test_show(self):
        self.assertEqual({
            'size': 3000, 'checksum': self.layer['digest'][7:],
            'digest': self.layer['digest'],
            'media_type': 'application/vnd.oci.image.layer.v1.tar',
            'compression': None, 'disk_format': 'raw',
            'filename': 'disk.raw', 'updated_at': None,
            'properties': {'org.opencontainers.image.title': 'disk.raw'},
            'no_cache': False}, self.service.show(self.href))

    def test_show_without_annotations(self):
        digest, layer = self.add_artifact(b'x', None, annotations=None)
        info = self.service.show('oci://%s/%s@%s' % (HOST, common.REPO,
                                                     digest))
        self.assertIsNone(info['filename'])
        self.assertEqual({}, info['properties'])

    def test_tags_are_not_specific(self):
        for href in (INDEX_HREF, 'oci://%s/%s' % (HOST, common.REPO)):
            for call in (self.service.show, self.service.validate_href,
                         lambda h: self.service.download(h, io.BytesIO())):
                self.assertRaises(exception.OciImageNotSpecific, call, href)
        self.assertEqual(0, self.mocker.call_count)

    def test_index_digest_is_not_specific(self):
        digest = self.add_index([{'digest': self.digest}], ref=None)
        href = 'oci://%s/%s@%s' % (HOST, common.REPO, digest)
        self.assertRaises(exception.OciImageNotSpecific, self.service.show,
                          href)

    def test_download(self):
        out = io.BytesIO()
        self.assertIsNone(self.service.transfer_verified_checksum)
        self.service.download(self.href, out, checksum='md5:ignored')
        self.assertEqual(self.data, out.getvalue())
        self.assertEqual(self.layer['digest'],
                         self.service.transfer_verified_checksum)

    def test_failed_download_clears_the_verified_checksum(self):
        self.service.download(self.href, io.BytesIO())
        self.add_blob(data=b'E' * 3000, digest=self.layer['digest'])
        self.assertRaises(exception.ImageChecksumError,
                          self.service.download, self.href, io.BytesIO())
        self.assertIsNone(self.service.transfer_verified_checksum)

    def test_progress(self):
        calls = []
        self.service.download(self.href, io.BytesIO(),
                              progress=lambda *a: calls.append(a))
        self.assertEqual((3000, 3000), calls[-1])


class TestAuthAndClient(ServiceTestCase):

    def test_set_image_auth(self):
        self.assertTrue(self.service.is_auth_set_needed)
        with mock.patch.object(self.service.client, 'authenticate',
                               autospec=True) as auth:
            self.service.set_image_auth(INDEX_HREF, {'username': '',
                                                     'password': 'u:p'})
        auth.assert_called_once_with(INDEX_HREF, 'u', 'p', None)
        self.assertFalse(self.service.is_auth_set_needed)
        self.assertRaises(AssertionError, self.service.set_image_auth,
                          INDEX_HREF, None)

    def test_set_image_auth_token_and_none(self):
        with mock.patch.object(self.service.client, 'authenticate',
                               autospec=True) as auth:
            self.service.set_image_auth(INDEX_HREF, {'token': 't'})
        auth.assert_called_once_with(INDEX_HREF, None, None, 't')
        service = oci.OciImageService()
        with mock.patch.object(service.client, 'authenticate',
                               autospec=True) as auth:
            service.set_image_auth(INDEX_HREF, None)
        auth.assert_not_called()
        self.assertFalse(service.is_auth_set_needed)

    def test_client(self):
        client = oci_client.OciClient()
        self.assertIs(client, oci.OciImageService(client=client).client)
        service = oci.OciImageService(client=object(), context='ctx')
        self.assertIsInstance(service.client, oci_client.OciClient)
        self.assertIs(service.client, service.client)

    def test_loaded_for_oci(self):
        self.assertIsInstance(image_service.get_image_service(INDEX_HREF),
                              oci.OciImageService)
        for href, expected in ((INDEX_HREF, True), (' OCI://r/a', True),
                               ('https://r/a', False), (None, False),
                               ('oci:/r', False)):
            self.assertEqual(expected,
                             image_service.is_container_registry_url(href))
