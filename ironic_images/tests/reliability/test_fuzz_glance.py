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

"""Fuzzing the image records a Glance API answers.

A fake Glance v2 API on a FaultServer answers ``GET /v2/images/ID`` with
records of every shape (fields of the wrong type, missing, huge, odd
statuses and hash algorithms, a ``direct_url`` anywhere) and serves the
data. ``show`` and ``download`` must give a valid result or one of our
exceptions, never anything else, never a hang; a completed download has
the served bytes and a verified checksum.
"""

import hashlib
import io
import json
import uuid

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ironic_images import exception
from ironic_images import image_service
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.reliability import base

DATA = b'glance image data' * 997
IMAGE_ID = '6a0e8a1c-3f36-4f0e-9d33-0b1f1c3e2a11'

scalar = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                   st.floats(allow_nan=False), st.text(max_size=12))
value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=6), inner,
                                       max_size=3), max_leaves=6)
record = st.fixed_dictionaries({}, optional={
    'id': st.sampled_from([IMAGE_ID, str(uuid.UUID(int=1))]) | value,
    'status': st.sampled_from(['active', 'queued', 'killed', 'ACTIVE'])
    | value,
    'size': st.sampled_from([len(DATA), 0, -1, len(DATA) + 1, 2 ** 64])
    | value,
    'virtual_size': value,
    'checksum': st.sampled_from([hashlib.md5(DATA).hexdigest(), 'zz'])
    | value,
    'os_hash_algo': st.sampled_from(['sha512', 'sha256', 'md5', 'crc32',
                                     'SHA512', '']) | value,
    'os_hash_value': st.sampled_from([hashlib.sha512(DATA).hexdigest(),
                                      hashlib.sha256(DATA).hexdigest(),
                                      'ab' * 64]) | value,
    'disk_format': st.sampled_from(['raw', 'qcow2', 'iso', 'vmdk']) | value,
    'container_format': st.just('bare') | value,
    'created_at': st.sampled_from(['2026-01-01T00:00:00Z', 'yesterday',
                                   '9999-99-99T99:99:99Z']) | value,
    'updated_at': st.sampled_from(['2026-01-01T00:00:00Z', '']) | value,
    'direct_url': st.sampled_from(['file:///etc/passwd',
                                   'file:///var/lib/glance/x',
                                   'http://127.0.0.1:9/x', 'swift://x'])
    | value,
    'locations': value,
    'visibility': value,
    'properties': value,
})


class TestGlanceRecordFuzz(base.ReliabilityTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(faults.FaultServerFixture())
        self.server.add('/v2/images/%s/file' % IMAGE_ID, body=DATA)
        self.config(auth_type='none', endpoint_override=self.server.url,
                    group='glance')
        self.config(retries=0, group='download')
        self.config(num_retries=0, group='glance')
        self.config(allow_md5_checksum=True)

    def call(self, function, *args):
        """Call; a result, or one of our exceptions.

        :returns: ``(True, result)``, or ``(False, None)`` when one of our
            exceptions was raised (a download returns None either way).
        """
        try:
            with base.bounded(what=function.__name__):
                return True, function(*args)
        except exception.IronicImagesException:
            return False, None

    @given(record)
    @settings(max_examples=150)
    def test_records(self, value):
        self.server.add('/v2/images/' + IMAGE_ID,
                        body=json.dumps(value).encode(),
                        content_type='application/json')
        service = image_service.get_image_service(IMAGE_ID)
        shown, properties = self.call(service.show, IMAGE_ID)
        if shown:
            self.assertIsInstance(properties, dict)
        written = io.BytesIO()
        done, _result = self.call(service.download, IMAGE_ID, written)
        if done:
            # A completed download is the served data, verified when the
            # record gave a usable checksum.
            self.assertEqual(DATA, written.getvalue())

    def test_deeply_nested_record(self):
        # json raises RecursionError, not ValueError, for a record nested
        # thousands deep.
        self.server.add('/v2/images/' + IMAGE_ID, body=b'[' * 50000,
                        content_type='application/json')
        self.assertRaises(exception.IronicImagesException,
                          image_service.get_image_service(IMAGE_ID).show,
                          IMAGE_ID)
