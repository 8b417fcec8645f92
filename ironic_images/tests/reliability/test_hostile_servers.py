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

"""Servers that send more than anyone needs, and manifests of wrong types.

Every body the library reads whole has its cap
(:mod:`ironic_images.transfer.bodies`); each is asserted here against a
server that streams far past it (64 MiB of a body that, to the client,
never ends): the call fails with our exception naming the cap, the
memory it took (tracemalloc's peak) stays within the cap plus a margin,
and the server saw the connection closed before it had sent it all.
The registry is the real one (docker-registry) wherever the fault can go
through it: a token realm, the tag list behind a forwarding FaultServer.
"""

import hashlib
import io
import json
import os
import time
import tracemalloc
import types

import fixtures
from oslo_utils import units

from ironic_images.cmd import main as cmd_main
from ironic_images import exception
from ironic_images.fetch import fetcher
from ironic_images.image_service import glance
from ironic_images.image_service import http
from ironic_images.image_service import oci
from ironic_images.image_service.oci import client as oci_client
from ironic_images.tests.functional.servers import faults
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import registry
from ironic_images.tests.functional.servers import token_server
from ironic_images.tests.reliability import base
from ironic_images.transfer import bodies

# What a hostile server sends: far more than any cap.
FLOOD = 64 * units.Mi
# Memory a call may take beyond its cap: a chunk, the growth of a
# buffer, the objects of a failed parse and of the exception.
MARGIN = 2 * units.Mi
REPO = 'hostile/disk'
DATA = b'hostile server test image ' * 2000
GLANCE_ID = '0b5a3f58-3c34-4e27-bd2d-2b1e7ad9c0a1'


def bound(cap):
    """The most memory reading a body under ``cap`` may take."""
    # A bytearray grows by an eighth past what it holds.
    return cap + cap // 8 + MARGIN


class HostileTestCase(base.ReliabilityTestCase):

    def setUp(self):
        super().setUp()
        self.config(permit_fallback_to_http_transport=True, group='oci')
        self.config(retries=0, group='download')
        self.faults = self.useFixture(faults.FaultServerFixture())

    def peak_of(self, function, *args):
        """Call; return (the exception raised or None, the memory peak).

        The result, when there is one, is in ``self.result``.
        """
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        tracemalloc.reset_peak()
        error = None
        try:
            with base.bounded(60, function.__name__):
                self.result = function(*args)
        except Exception as raised:
            error = raised
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        base.say('%s: peak %.2f MiB' % (self.id(), peak / units.Mi))
        return error, peak

    def assertCapped(self, error, peak, cap, error_class):
        """Our exception naming the cap; memory and bytes sent bounded."""
        self.assertIsInstance(error, error_class)
        self.assertIn('larger than %d bytes' % cap, str(error))
        self.assertLess(peak, bound(cap))
        self.assertHungUp()

    def assertHungUp(self):
        """The client closed the connection long before the flood ended."""
        # The server's thread records it when its next write fails.
        deadline = time.monotonic() + 10
        while not self.faults.flooded and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(1, len(self.faults.flooded))
        self.assertLess(self.faults.flooded[0], FLOOD)


class TestEndlessBodies(HostileTestCase):
    """Each body read whole, from a server that never stops sending."""

    def push_artifact(self, server):
        return oci_push.push_artifact(server, REPO, 'v1', DATA, 'disk.raw')

    def test_token_response(self):
        # The real registry, whose token realm streams forever.
        tokens = self.useFixture(token_server.TokenServerFixture())
        realm = types.SimpleNamespace(
            realm=self.faults.url + '/token', service=tokens.server.service,
            issuer=tokens.server.issuer, cert_path=tokens.server.cert_path)
        server = self.useFixture(registry.RegistryFixture(token_auth=realm))
        self.faults.script('/token', [faults.flood(FLOOD, b'{"token": "')])
        error, peak = self.peak_of(oci.OciImageService().show,
                                   server.oci_url(REPO, 'sha256:' + 'a' * 64))
        self.assertCapped(error, peak, bodies.TOKEN_RESPONSE,
                          exception.ImageRefValidationFailed)

    def _registry_behind_faults(self):
        server = self.useFixture(registry.RegistryFixture())
        self.push_artifact(server)
        self.faults.forward_to(server.url)
        return 'oci://127.0.0.1:%d/%s' % (self.faults.port, REPO)

    def test_tag_list_of_a_missing_tag(self):
        href = self._registry_behind_faults()
        self.faults.script('/v2/%s/tags/list' % REPO, [
            faults.flood(FLOOD, b'{"name": "%s", "tags": [' % REPO.encode(),
                         b'"v", ')])
        error, peak = self.peak_of(
            oci.OciImageService().identify_specific_image, href + ':v2')
        self.assertIsInstance(error, exception.OciImageTagNotFound)
        self.assertEqual('too many to list', error.kwargs['tags'])
        self.assertLess(peak, bound(bodies.TAG_LIST_HINT))
        self.assertHungUp()

    def test_tag_list(self):
        href = self._registry_behind_faults()
        self.faults.script('/v2/%s/tags/list' % REPO, [
            faults.flood(FLOOD, b'{"tags": [', b'"v", ')])
        error, peak = self.peak_of(oci_client.OciClient().get_tags, href)
        self.assertCapped(error, peak, bodies.TAG_LIST_PAGE,
                          exception.ImageRefValidationFailed)

    def test_manifest(self):
        href = self._registry_behind_faults()
        self.faults.script('/v2/%s/manifests/v1' % REPO, [
            faults.flood(FLOOD, b'{"layers": [', b'{}, ')])
        error, peak = self.peak_of(
            oci.OciImageService().identify_specific_image, href + ':v1')
        self.assertCapped(error, peak, bodies.MANIFEST,
                          exception.ImageRefValidationFailed)

    def test_error_body(self):
        href = self._registry_behind_faults()
        digest = 'sha256:' + 'b' * 64
        self.faults.script('/v2/%s/manifests/%s' % (REPO, digest), [
            faults.flood(FLOOD, b'{"errors": [{"code": "', b'X',
                         status=404)])
        error, peak = self.peak_of(oci.OciImageService().show,
                                   '%s@%s' % (href, digest))
        self.assertIsInstance(error, exception.ImageNotFound)
        self.assertLess(peak, bound(bodies.ERROR_BODY))
        self.assertHungUp()

    def test_checksum_file(self):
        url = self.faults.add('/SHA256SUMS', body=b'x')
        self.faults.script('/SHA256SUMS', [
            faults.flood(FLOOD, fill=b'%s  disk.img\n' % (b'a' * 64))])
        error, peak = self.peak_of(http.HttpImageService.get, url)
        self.assertIsInstance(error, exception.ImageDownloadFailed)
        self.assertLess(peak, bound(bodies.CHECKSUM_FILE))
        self.assertHungUp()

    def test_redirect_body(self):
        # requests reads a redirect's body whole before following it.
        target = self.faults.add('/SHA256SUMS', body=b'%s  disk.img\n' % (
            b'a' * 64))
        self.faults.add('/moved', body=b'x')
        self.faults.script('/moved', [faults.Fault(
            flood=(302, b'', b' ', FLOOD), headers={'Location': target})])
        error, peak = self.peak_of(http.HttpImageService.get,
                                   self.faults.url_for('/moved'))
        self.assertIsNone(error)
        self.assertIn('disk.img', self.result)
        self.assertLess(peak, MARGIN)
        self.assertHungUp()

    def test_glance_record(self):
        self.config(auth_type='none', endpoint_override=self.faults.url,
                    group='glance')
        self.faults.script('/v2/images/%s' % GLANCE_ID, [
            faults.flood(FLOOD, b'{"id": "%s", "x": "' % GLANCE_ID.encode(),
                         b'y')])
        error, peak = self.peak_of(glance.GlanceImageService().show,
                                   GLANCE_ID)
        self.assertCapped(error, peak, bodies.GLANCE_RECORD,
                          exception.ImageRefValidationFailed)


class TestMissingTags(HostileTestCase):
    """The tag list is read only to name tags, bounded, and not always."""

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(registry.RegistryFixture())
        self.faults.forward_to(self.server.url)
        self.host = '127.0.0.1:%d' % self.faults.port

    def test_no_tag_list_for_a_missing_repository(self):
        # distribution says MANIFEST_UNKNOWN here; others say NAME_UNKNOWN.
        answer = (b'{"errors": [{"code": "NAME_UNKNOWN", "message": '
                  b'"repository name not known to registry"}]}')
        self.faults.script('/v2/no/such/manifests/v1', [
            faults.flood(len(answer), answer, status=404)])
        error = self.assertRaises(
            exception.OciImageTagNotFound,
            oci.OciImageService().identify_specific_image,
            'oci://%s/no/such:v1' % self.host)
        self.assertIn('no such repository', str(error))
        self.assertEqual([], self.faults.requests_for('/v2/no/such/tags/list'))

    def test_at_most_twenty_tags_named(self):
        art = oci_push.push_artifact(self.server, REPO, 'v0', DATA,
                                     'disk.raw')
        for number in range(1, 25):
            oci_push.push_manifest(self.server.url, REPO, 'v%02d' % number,
                                   art.manifest, oci_push.MANIFEST)
        error = self.assertRaises(
            exception.OciImageTagNotFound,
            oci.OciImageService().identify_specific_image,
            'oci://%s/%s:missing' % (self.host, REPO))
        named = error.kwargs['tags']
        self.assertTrue(named.endswith(' and more'), named)
        self.assertEqual(20, len(named[:-len(' and more')].split(', ')))
        # One page asked for, with its size.
        asked = self.faults.requests_for('/v2/%s/tags/list' % REPO)
        self.assertEqual(['/v2/%s/tags/list?n=21' % REPO],
                         [request.path for request in asked])


def _manifest(layer=None, **fields):
    """An artifact manifest of DATA, with a layer's fields replaced."""
    body = oci_push.artifact_manifest(oci_push.sha256_digest(DATA),
                                      len(DATA), 'disk.raw')
    body['layers'][0].update(layer or {})
    body.update(fields)
    return json.dumps(body).encode()


class TestManifestFieldTypes(HostileTestCase):
    """Fields of the wrong type, from a registry that serves anything.

    The real registry refuses such manifests on push; a hostile one
    serves them. Each is refused with ImageRefValidationFailed naming the
    field, before the field is used; never a TypeError.
    """

    def setUp(self):
        super().setUp()
        self.host = '127.0.0.1:%d' % self.faults.port
        self.faults.add('/v2/%s/blobs/%s' % (REPO,
                                             oci_push.sha256_digest(DATA)),
                        body=DATA)

    def serve(self, body, ref='v1', content_type=oci_push.MANIFEST):
        digest = 'sha256:' + hashlib.sha256(body).hexdigest()
        for reference in (ref, digest):
            self.faults.add('/v2/%s/manifests/%s' % (REPO, reference),
                            body=body, content_type=content_type)
        return 'oci://%s/%s@%s' % (self.host, REPO, digest)

    def assertRefused(self, field, function, *args):
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  function, *args)
        self.assertIn(field, str(error))
        return error

    def test_layer_size_as_a_string_reaches_no_space_check(self):
        href = self.serve(_manifest({'size': str(len(DATA))}))
        self.assertRefused('layers[0].size', fetcher.fetch, None, href,
                           os.path.join(self.dest_dir, 'disk'))
        self.assertNothingAt(os.path.join(self.dest_dir, 'disk'))

    def test_title_not_a_string(self):
        self.serve(_manifest({'annotations': {
            'org.opencontainers.image.title': 5}}))
        self.assertRefused(
            'layers[0].annotations["org.opencontainers.image.title"]',
            oci.OciImageService().identify_specific_image,
            'oci://%s/%s:v1' % (self.host, REPO))

    def test_media_type_not_a_string(self):
        self.serve(_manifest({'mediaType': ['application/zstd']}))
        self.assertRefused('layers[0].mediaType',
                           oci.OciImageService().identify_specific_image,
                           'oci://%s/%s:v1' % (self.host, REPO))

    def test_disktype_not_a_string(self):
        child = _manifest()
        child_href = self.serve(child, ref='child')
        index = oci_push.index([(child_href.rpartition('@')[2], len(child),
                                 'amd64', 'linux', {'disktype': 7})])
        self.serve(json.dumps(index).encode(), content_type=oci_push.INDEX)
        self.assertRefused('manifests[0].annotations.disktype',
                           oci.OciImageService().identify_specific_image,
                           'oci://%s/%s:v1' % (self.host, REPO))

    def test_own_rules(self):
        cases = [
            ({'size': -1}, 'layers[0].size'),
            ({'size': float(len(DATA))}, 'layers[0].size'),
            ({'size': True}, 'layers[0].size'),
            ({'digest': 'sha256:' + 'A' * 64}, 'layers[0].digest'),
            ({'digest': 'sha256:' + 'a' * 63}, 'layers[0].digest'),
            ({'digest': 'md5:' + 'a' * 32}, 'layers[0].digest'),
            ({'digest': 'sha256:%s\n' % ('a' * 64)}, 'layers[0].digest'),
            ({'annotations': {'x': None}}, 'layers[0].annotations.x'),
        ]
        for layer, field in cases:
            href = self.serve(_manifest(layer))
            self.assertRefused(field, oci.OciImageService().show, href)
        href = self.serve(_manifest(schemaVersion=1))
        self.assertRefused('schemaVersion', oci.OciImageService().show, href)

    def test_docker_schema2_accepted(self):
        body = _manifest(mediaType=oci_push.DOCKER_MANIFEST)
        href = self.serve(body, content_type=oci_push.DOCKER_MANIFEST)
        self.assertEqual(len(DATA), oci.OciImageService().show(href)['size'])
        written = io.BytesIO()
        oci.OciImageService().download(href, written)
        self.assertEqual(DATA, written.getvalue())


class TestHrefMasking(HostileTestCase):
    """A password in an http href never reaches what is printed."""

    SECRET = 'pa55-w0rd-9f3e'

    def setUp(self):
        super().setUp()
        self.faults.add('/disk.img', body=DATA)
        self.href = 'http://user:%s@127.0.0.1:%d/disk.img?sig=%s' % (
            self.SECRET, self.faults.port, self.SECRET)

    def test_show_returns_masked_url(self):
        url = http.HttpImageService().show(self.href)['properties']['url']
        self.assertNotIn(self.SECRET, url)
        self.assertIn('user:***@127.0.0.1', url)

    def test_cli_show_prints_no_password(self):
        out = self.useFixture(fixtures.MonkeyPatch('sys.stdout',
                                                   io.StringIO())).new_value
        err = self.useFixture(fixtures.MonkeyPatch('sys.stderr',
                                                   io.StringIO())).new_value
        code = cmd_main.main(['show', self.href, '-f', 'json'])
        self.assertEqual(0, code, err.getvalue())
        printed = json.loads(out.getvalue())
        self.assertIn('user:***@', printed['properties']['url'])
        self.assertNotIn(self.SECRET, out.getvalue() + err.getvalue())

    def test_cli_error_line_prints_no_password(self):
        err = self.useFixture(fixtures.MonkeyPatch('sys.stderr',
                                                   io.StringIO())).new_value
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', io.StringIO()))
        href = self.href.replace('/disk.img', '/missing.img')
        self.assertNotEqual(0, cmd_main.main(['show', href]))
        self.assertIn('ironic-images:', err.getvalue())
        self.assertNotIn(self.SECRET, err.getvalue())
