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

"""Downloads from real servers into regular files, with direct I/O.

Each download goes into a file the test opened itself, so that what the
writer hands back (flags, position) can be checked before it is closed.
"""

import fcntl
import os

import fixtures

from ironic_images.image_service import http
from ironic_images.image_service import oci
from ironic_images.tests import base
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional import test_http_service
from ironic_images.tests.functional import test_oci_basic
from ironic_images.transfer import file_writer


class WriterSpy(fixtures.Fixture):
    """Notes, as each FileWriter closes, whether it wrote directly."""

    def _setUp(self):
        self.direct = []
        real_close = file_writer.FileWriter.close

        def close(writer):
            real_close(writer)
            self.direct.append(writer.direct)

        self.useFixture(fixtures.MockPatchObject(
            file_writer.FileWriter, 'close', close))


class DirectDownloadMixin:

    def assertDirectDownload(self, download, data, direct):
        """Download into a file opened here; check what comes back.

        :param download: ``download(image_file)``.
        :param data: the bytes expected.
        :param direct: whether the bytes should go to the disk directly.
        """
        spy = self.useFixture(WriterSpy())
        path = os.path.join(self.dest_dir, 'direct.img')
        with open(path, 'wb') as image_file:
            download(image_file)
            flags = fcntl.fcntl(image_file.fileno(), fcntl.F_GETFL)
            position = image_file.tell()
            # The file is the caller's again: a write goes after the data.
            image_file.write(b'!')
        with open(path, 'rb') as image_file:
            self.assertEqual(data + b'!', image_file.read())
        self.assertFalse(flags & os.O_DIRECT)
        self.assertEqual(len(data), position)
        self.assertEqual([direct], spy.direct)


class TestHttpDirect(test_http_service.HttpTestCase, DirectDownloadMixin):

    def setUp(self):
        super().setUp()
        self.put('disk.img')
        self.url = self.nginx().url + '/disk.img'
        self.checksum = 'sha256:' + test_http_service.IMAGE_SHA256

    def _download(self, image_file):
        http.HttpImageService().download(self.url, image_file,
                                         checksum=self.checksum)

    def test_direct(self):
        self.assertDirectDownload(self._download, test_http_service.IMAGE,
                                  base.supports_direct_io(self.dest_dir))

    def test_option_off(self):
        self.config(direct_io=False, group='download')
        self.assertDirectDownload(self._download, test_http_service.IMAGE,
                                  False)


class TestOciDirect(test_oci_basic.OciTestCase, DirectDownloadMixin):

    def test_direct(self):
        server = self.registry()
        art = oci_push.push_artifact(server, 'os/disk', 'v1',
                                     test_oci_basic.RAW, 'disk.raw')
        href = server.oci_url('os/disk', art.manifest_digest)
        self.assertDirectDownload(
            lambda image_file: oci.OciImageService().download(href,
                                                              image_file),
            test_oci_basic.RAW, base.supports_direct_io(self.dest_dir))
