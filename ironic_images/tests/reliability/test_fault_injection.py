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

"""100 downloads per driver under random faults.

A FaultServer on loopback serves the image (for oci://, a fake registry:
one artifact manifest and its blob; for glance, a fake Glance API: the
image record and its data) and answers the GETs of each download
with a random fault script (see :mod:`.faultplan`): resets and truncations
at random offsets, wrong Content-Length both ways, stalls past the
timeout, slow answers, 429 with Retry-After, bursts of 503, another body
on the resumed request, Range ignored, 404.

Property, for every download: it completes and the file is the image
(verified by its checksum or digest), or it raises one of our exceptions
and nothing is left at the destination, not even a temp file. The seed is
printed; ``IRONIC_IMAGES_SEED=N`` replays a run.
"""

import hashlib
import json
import os
import uuid

from oslo_utils import units

from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images.fetch import fetcher
from ironic_images import image_cache
from ironic_images import image_service
from ironic_images.image_service import http
from ironic_images.image_service import oci
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.reliability import base
from ironic_images.tests.reliability import faultplan

DOWNLOADS = 100


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class FaultInjectionTestCase(base.ReliabilityTestCase):

    def setUp(self):
        super().setUp()
        self.rng, self.seed = base.seeded_random(self)
        size = self.rng.randint(units.Mi, 2 * units.Mi)
        self.v1 = self.rng.randbytes(size)
        self.v2 = self.rng.randbytes(size)
        self.server = self.useFixture(faults.FaultServerFixture())
        self.tally = faultplan.Tally()

    def attempt(self, number, names, download, valid, to_path=False):
        """Run one download; check the file or the absence of one.

        :param download: ``download(image_file)``, or ``download(path)``
            when ``to_path`` (fetch and the cache write atomically
            themselves).
        :param valid: the bodies a completed download may have.
        """
        dest = os.path.join(self.dest_dir, 'disk-%d.img' % number)
        where = 'download %d of seed %d, faults %s' % (
            number, self.seed, names)
        try:
            with base.bounded(60, where):
                if to_path:
                    download(dest)
                else:
                    with fileutils.atomic_write(dest) as image_file:
                        download(image_file)
        except exception.IronicImagesException as error:
            self.assertNothingAt(dest, where)
            outcome = type(error).__name__
            self.tally.add(names, outcome, error)
            return outcome
        except Exception as error:
            self.fail('%s: %s escaped: %s' % (where, type(error).__name__,
                                              error))
        else:
            with open(dest, 'rb') as written:
                digest = sha256(written.read())
            if digest not in [sha256(body) for body in valid]:
                self.tally.lost += 1
                self.fail('%s: a wrong file at the destination' % where)
            os.unlink(dest)
            outcome = 'complete'
        self.tally.add(names, outcome)
        return outcome

    def report(self, title):
        line = self.tally.summary('%s (seed %d)' % (title, self.seed))
        self.addDetail('tally', base.text(line))
        self.addDetail('reasons', base.text(self.tally.reasons_text()))
        base.say(line)
        self.assertEqual(0, self.tally.lost)
        self.assertEqual([], self.leftovers())
        # The faults must not make every download fail: most recover.
        self.assertGreater(self.tally.outcomes['complete'], DOWNLOADS // 3,
                           line)


class TestHttpUnderFaults(FaultInjectionTestCase):

    def test_http_downloads(self):
        service = http.HttpImageService()
        sums = self.server.add('/SHA256SUMS', body=(
            '%s  disk.img\n' % sha256(self.v1)).encode())
        for number in range(DOWNLOADS):
            etag = self.rng.choice([True, True, None, 'W/"weak"'])
            url = self.server.add('/disk.img', body=self.v1, etag=etag)
            script, names = faultplan.draw(self.rng, len(self.v1), self.v2)
            self.server.script('/disk.img', script, method='GET')
            mode = self.rng.choice(['sha256', 'sha256', 'url', 'none'])
            if mode == 'none' and faultplan.NEEDS_CHECKSUM & set(names):
                mode = 'sha256'
            checksum = {'sha256': 'sha256:' + sha256(self.v1), 'url': sums,
                        'none': None}[mode]
            self.attempt(number, names + ['checksum=' + mode],
                         lambda f: service.download(url, f,
                                                    checksum=checksum),
                         [self.v1] if checksum else [self.v1, self.v2])
        self.report('http')


class TestOciUnderFaults(FaultInjectionTestCase):

    def setUp(self):
        super().setUp()
        self.config(permit_fallback_to_http_transport=True, group='oci')
        blob_digest = oci_push.sha256_digest(self.v1)
        self.manifest = oci_push.encode_manifest(oci_push.artifact_manifest(
            blob_digest, len(self.v1), 'disk.raw'))
        digest = oci_push.sha256_digest(self.manifest)
        self.manifest_path = '/v2/fault/disk/manifests/' + digest
        self.blob_path = '/v2/fault/disk/blobs/' + blob_digest
        self.href = 'oci://127.0.0.1:%d/fault/disk@%s' % (
            self.server.port, digest)

    def test_oci_downloads(self):
        service = oci.OciImageService()
        manifest_kinds = ['reset', 'cut', 'long-length', '429', '503-burst',
                          'changed', '404', 'slow']
        for number in range(DOWNLOADS):
            self.server.add(self.manifest_path, body=self.manifest,
                            content_type=oci_push.MANIFEST)
            self.server.add(self.blob_path, body=self.v1)
            script, names = faultplan.draw(self.rng, len(self.v1), self.v2)
            self.server.script(self.blob_path, script, method='GET')
            if self.rng.random() < 0.25:
                other = self.manifest.replace(b'disk.raw', b'disk.qcow')
                manifest_script, manifest_names = faultplan.draw(
                    self.rng, len(self.manifest), other, manifest_kinds,
                    most=2)
                self.server.script(self.manifest_path, manifest_script,
                                   method='GET')
                names += ['manifest:' + name for name in manifest_names]
            outcome = self.attempt(
                number, names, lambda f: service.download(self.href, f),
                [self.v1])
            if outcome == 'complete':
                self.assertEqual('sha256:' + sha256(self.v1),
                                 service.transfer_verified_checksum)
        self.report('oci')


class TestGlanceUnderFaults(FaultInjectionTestCase):
    """The Glance driver against a fake Glance v2 API on the FaultServer.

    The record carries sha512 ``os_hash_value`` and md5 ``checksum`` as a
    real Glance does; the data path gets the faults.
    """

    def setUp(self):
        super().setUp()
        self.image_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
        record = {
            'id': self.image_id, 'name': 'disk', 'status': 'active',
            'size': len(self.v1), 'disk_format': 'raw',
            'container_format': 'bare', 'visibility': 'public',
            'checksum': hashlib.md5(self.v1).hexdigest(),
            'os_hash_algo': 'sha512',
            'os_hash_value': hashlib.sha512(self.v1).hexdigest(),
            'created_at': '2026-01-01T00:00:00Z',
            'updated_at': '2026-01-01T00:00:00Z',
            'file': '/v2/images/%s/file' % self.image_id,
        }
        self.server.add('/v2/images/' + self.image_id,
                        body=json.dumps(record).encode(),
                        content_type='application/json')
        self.data_path = '/v2/images/%s/file' % self.image_id
        self.config(auth_type='none', endpoint_override=self.server.url,
                    group='glance')

    def test_glance_downloads(self):
        record_kinds = ['reset', 'cut', '429', '503-burst', '404', 'slow']
        for number in range(DOWNLOADS):
            # Glance sends no ETag; a Content-MD5 is not modelled here.
            self.server.add(self.data_path, body=self.v1,
                            etag=self.rng.choice([None, True]))
            script, names = faultplan.draw(self.rng, len(self.v1), self.v2)
            self.server.script(self.data_path, script, method='GET')
            record = '/v2/images/' + self.image_id
            if self.rng.random() < 0.2:
                record_script, record_names = faultplan.draw(
                    self.rng, 200, b'{}', record_kinds, most=2)
                self.server.script(record, record_script, method='GET')
                names += ['record:' + name for name in record_names]
            else:
                self.server.script(record, [])
            service = image_service.get_image_service(self.image_id)
            self.attempt(number, names,
                         lambda f: service.download(self.image_id, f),
                         [self.v1])
        self.report('glance')


class TestFetchAndCacheUnderFaults(FaultInjectionTestCase):
    """The whole fetch pipeline, and the cache, over http under faults.

    ``image_fetch.fetch`` streams, verifies, inspects (the image is raw)
    and gates; ``ImageCache.fetch_image`` does so into a master (a new
    cache directory each time, so each one downloads) and links it to the
    destination. Neither may leave a temp file in either directory.
    """

    HALF = DOWNLOADS // 2

    def test_fetch_and_cache(self):
        sha = 'sha256:' + sha256(self.v1)
        for number in range(DOWNLOADS):
            url = self.server.add('/disk.img', body=self.v1)
            script, names = faultplan.draw(self.rng, len(self.v1), self.v2)
            self.server.script('/disk.img', script, method='GET')
            if number < self.HALF:
                self.attempt(number, names + ['fetch'],
                             lambda dest: fetcher.fetch(
                                 None, url, dest, checksum=sha),
                             [self.v1], to_path=True)
                continue
            master_dir = os.path.join(self.tmp, 'master-%d' % number)
            cache = image_cache.ImageCache(master_dir)
            self.attempt(number, names + ['cache'],
                         lambda dest: cache.fetch_image(
                             url, dest, force_raw=False,
                             expected_checksum=sha),
                         [self.v1], to_path=True)
            self.assertEqual([], [name for name in os.listdir(master_dir)
                                  if name.endswith(fileutils.PART_SUFFIX)])
        self.report('fetch and cache')
