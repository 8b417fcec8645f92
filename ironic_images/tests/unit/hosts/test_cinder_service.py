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

"""Cinder's image service as a driver: what it shows, what it verifies.

The functional tests (``tests/functional/test_cinder_host.py``) run it in
front of a real Glance; these cover what a real Glance does not send.
"""

import datetime
import hashlib
import io

from ironic_images import exception
from ironic_images.hosts import cinder_service
from ironic_images.tests import base

ID = '5f2b8c1e-9d3a-4b6c-8e7f-0a1b2c3d4e5f'
DATA = b'0123456789' * 1000


class FakeCinderImageService:
    """Cinder's GlanceImageService's show and download, from memory."""

    def __init__(self, meta, data=DATA):
        self.meta = meta
        self.data = data
        self.calls = []

    def show(self, context, image_id):
        self.calls.append(('show', context, image_id))
        return self.meta

    def download(self, context, image_id, data=None):
        self.calls.append(('download', context, image_id))
        for start in range(0, len(self.data), 4096):
            data.write(self.data[start:start + 4096])


def meta(**changes):
    image = {'id': ID, 'size': len(DATA), 'disk_format': 'raw',
             'container_format': 'bare', 'os_hash_algo': 'sha512',
             'os_hash_value': hashlib.sha512(DATA).hexdigest(),
             'checksum': hashlib.md5(DATA).hexdigest(),
             'updated_at': datetime.datetime(
                 2026, 5, 2, 13, 12, 13,
                 tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
             'properties': {'os_distro': 'x'}}
    image.update(changes)
    return image


class TestCinderImageService(base.TestCase):

    def service(self, **changes):
        self.cinder = FakeCinderImageService(meta(**changes))
        return cinder_service.CinderImageService(self.cinder, 'ctx')

    def test_show_normalizes_cinders_dict(self):
        shown = self.service().show(ID)
        self.assertEqual(datetime.datetime(2026, 5, 2, 11, 12, 13),
                         shown['updated_at'])
        self.assertEqual('x', shown['properties']['os_distro'])
        self.assertEqual('raw', shown['properties']['disk_format'])
        self.assertEqual(len(DATA), shown['size'])

    def test_show_asks_cinder_once(self):
        service = self.service()
        service.show(ID)
        service.resolve(ID)
        self.assertEqual([('show', 'ctx', ID)], self.cinder.calls)

    def test_download_verifies_the_multihash(self):
        out = io.BytesIO()
        checksum = self.service().download(ID, out)
        self.assertEqual(DATA, out.getvalue())
        self.assertEqual('sha512:' + hashlib.sha512(DATA).hexdigest(),
                         checksum)
        self.assertIn(('download', 'ctx', ID), self.cinder.calls)

    def test_download_refuses_other_bytes(self):
        service = self.service(os_hash_value=hashlib.sha512(
            b'other').hexdigest())
        self.assertRaises(exception.ImageChecksumError, service.download,
                          ID, io.BytesIO())

    def test_download_verifies_an_extra_checksum(self):
        service = self.service()
        self.assertRaises(exception.ImageChecksumError, service.download,
                          ID, io.BytesIO(),
                          checksum='sha256:' + '0' * 64)

    def test_download_refuses_a_short_transfer(self):
        service = self.service(size=len(DATA) + 1)
        error = self.assertRaises(exception.ImageDownloadFailed,
                                  service.download, ID, io.BytesIO())
        self.assertIn('%d bytes' % len(DATA), str(error))

    def test_md5_only_image_needs_md5_allowed(self):
        service = self.service(os_hash_algo=None, os_hash_value=None)
        self.assertRaises(exception.ImageChecksumAlgorithmFailure,
                          service.download, ID, io.BytesIO())
        self.config(allow_md5_checksum=True)
        self.assertEqual('md5:' + hashlib.md5(DATA).hexdigest(),
                         service.download(ID, io.BytesIO()))

    def test_image_without_checksum_is_checked_for_size(self):
        service = self.service(os_hash_algo=None, os_hash_value=None,
                               checksum=None)
        self.assertIsNone(service.download(ID, io.BytesIO()))

    def test_show_that_is_not_an_image(self):
        self.cinder = FakeCinderImageService(None)
        service = cinder_service.CinderImageService(self.cinder, 'ctx')
        self.assertRaises(exception.ImageRefValidationFailed, service.show,
                          ID)
