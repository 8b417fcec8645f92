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

"""Fuzzing OCI manifests and indexes, served by a fake registry.

Hypothesis builds manifests and indexes of every shape (right and wrong
types, missing and extra fields, odd media types, digests that point at
a real manifest, at nothing or at garbage). A FaultServer serves one under
a tag and under its digest, next to one valid artifact manifest and its
blob. ``identify_specific_image`` on the tag, then ``show`` and
``download`` of what it found (or of the digest URL), must give a valid
result or one of our exceptions, never anything else, never a hang; a
download that completes has the blob's bytes.
"""

import hashlib
import io
import json

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ironic_images import exception
from ironic_images.image_service import oci
from ironic_images.image_service.oci import client as oci_client
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.reliability import base

REPO = 'fz/disk'
BLOB = b'fuzzed disk image' * 1000
BLOB_DIGEST = oci_push.sha256_digest(BLOB)
CHILD = oci_push.encode_manifest(oci_push.artifact_manifest(
    BLOB_DIGEST, len(BLOB), 'disk.qcow2'))
CHILD_DIGEST = oci_push.sha256_digest(CHILD)
MEDIA_TYPES = [oci_client.INDEX_TYPE, oci_client.MANIFEST_TYPE,
               oci_client.DOCKER_LIST_TYPE,
               oci_client.DOCKER_MANIFEST_TYPE, 'application/json', '',
               'text/html']

json_scalar = st.one_of(st.none(), st.booleans(),
                        st.integers(-2 ** 70, 2 ** 70),
                        st.floats(allow_nan=False), st.text(max_size=20))
json_value = st.recursive(
    json_scalar, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
digest = st.sampled_from([CHILD_DIGEST, BLOB_DIGEST, 'sha256:' + 'a' * 64,
                          'sha512:' + 'b' * 128, 'sha256:XYZ', 'md5:00',
                          '', 'sha256:' + 'A' * 64]) | json_value
maybe = st.one_of(st.just(None), json_value)


def _without_none(mapping):
    return {key: value for key, value in mapping.items()
            if value is not None}


descriptor = st.builds(
    lambda d, size, media, ann, plat: _without_none({
        'digest': d, 'size': size, 'mediaType': media, 'annotations': ann,
        'platform': plat}),
    digest, st.one_of(st.just(len(BLOB)), st.integers(-1, 2 ** 64)),
    st.sampled_from(MEDIA_TYPES + ['application/zstd', None]),
    st.one_of(st.none(), st.fixed_dictionaries({}, optional={
        'org.opencontainers.image.title': st.sampled_from(
            ['disk.qcow2', 'disk.raw.zst', '../../etc/x', '']) | json_value,
        'disktype': st.sampled_from(['raw', 'qcow2', 'RAW']) | json_value,
    }), json_value),
    st.one_of(st.none(), st.fixed_dictionaries({}, optional={
        'architecture': st.sampled_from(['amd64', 'x86_64', 'arm64'])
        | json_value,
        'os': st.just('linux')}), json_value))
document = st.builds(
    lambda version, media, layers, manifests, extra: _without_none(dict(
        extra, schemaVersion=version, mediaType=media, layers=layers,
        manifests=manifests)),
    st.sampled_from([2, 1, None, '2']),
    st.sampled_from(MEDIA_TYPES + [None]),
    st.one_of(st.none(), st.lists(descriptor, max_size=3), json_value),
    st.one_of(st.none(), st.lists(descriptor, max_size=4), json_value),
    st.dictionaries(st.sampled_from(['config', 'annotations',
                                     'artifactType', 'subject']),
                    json_value, max_size=2))


class TestOciDocumentFuzz(base.ReliabilityTestCase):

    def setUp(self):
        super().setUp()
        self.config(permit_fallback_to_http_transport=True, group='oci')
        self.config(retries=0, group='download')
        self.server = self.useFixture(faults.FaultServerFixture())
        self.host = '127.0.0.1:%d' % self.server.port
        self.server.add('/v2/%s/manifests/%s' % (REPO, CHILD_DIGEST),
                        body=CHILD, content_type=oci_push.MANIFEST)
        self.server.add('/v2/%s/blobs/%s' % (REPO, BLOB_DIGEST), body=BLOB)
        self.service = oci.OciImageService()

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

    def serve(self, body, content_type):
        digest = 'sha256:' + hashlib.sha256(body).hexdigest()
        for reference in ('v1', digest):
            self.server.add('/v2/%s/manifests/%s' % (REPO, reference),
                            body=body, content_type=content_type)
        return 'oci://%s/%s@%s' % (self.host, REPO, digest)

    def pull(self, tag_href, digest_href):
        found, info = self.call(self.service.identify_specific_image,
                                tag_href, None, 'x86_64')
        if found:
            self.assertIsInstance(info, dict)
            if info:  # {}: no manifest for the architecture, as Ironic's
                digest_href = info['oci_image_manifest_url']
        shown, properties = self.call(self.service.show, digest_href)
        if shown:
            self.assertIsInstance(properties, dict)
        written = io.BytesIO()
        done, _result = self.call(self.service.download, digest_href,
                                  written)
        if done:
            # Completed: only the real blob can have verified.
            self.assertEqual(BLOB, written.getvalue())

    @given(document, st.sampled_from(MEDIA_TYPES))
    @settings(max_examples=150)
    def test_documents(self, value, content_type):
        body = json.dumps(value).encode()
        self.pull('oci://%s/%s:v1' % (self.host, REPO),
                  self.serve(body, content_type))

    @given(st.one_of(st.binary(max_size=200),
                     json_value.map(lambda v: json.dumps(v).encode()),
                     st.just(b'{"layers": [' * 5000)),
           st.sampled_from(MEDIA_TYPES))
    @settings(max_examples=100)
    def test_raw_bodies(self, body, content_type):
        self.pull('oci://%s/%s:v1' % (self.host, REPO),
                  self.serve(body, content_type))
