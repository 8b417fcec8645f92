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

"""The driver contract, asserted once for every driver.

:class:`DriverContractTests` is mixed into one test class per driver, each
against its real server (``test_driver_contract`` for the in-tree drivers,
``test_thirdparty_driver`` for a driver loaded through an entry point):
what ``image_service/base.py`` promises is checked through the driver
itself and through everything that uses a driver, ``image_utils.fetch``,
``fetch_to_raw``, ``ImageCache.fetch_image`` and the ``ironic-images``
command. :class:`ChangingSourceContractTests` adds what a source whose
images change under one href promises the cache.
"""

import datetime
import hashlib
import io
import json
import os
from unittest import mock
import uuid

import fixtures
from oslo_concurrency import processutils
from oslo_utils import units

from ironic_images.cmd import main
from ironic_images import exception
from ironic_images import image_cache
from ironic_images import image_service
from ironic_images.image_service import base as service_base
from ironic_images import image_utils
from ironic_images.tests.functional import images

SIZE = 4 * units.Mi
# Not a multiple of any chunk size: the last chunk is a short one.
DATA = os.urandom(3 * units.Mi + 4321)
NEW_DATA = os.urandom(2 * units.Mi + 1234)


def sha256(data):
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def read(path):
    with open(path, 'rb') as f:
        return f.read()


class DriverContractTests(object):
    """What every driver does, mixed in before ``tests.base.TestCase``.

    The class it is mixed into sets the attributes below, implements
    :meth:`publish` and :meth:`missing_href`, and starts its server in
    ``setUp`` after calling ``super().setUp()``.
    """

    #: The class ``get_image_service`` returns for the published hrefs.
    driver_class = None
    #: download() verifies the checksum it is given (OCI verifies the
    #: layer digest instead, and ignores a given one).
    verifies_given_checksum = True
    #: show() knows when the image changed (registries do not say).
    has_updated_at = True
    #: resolve() names content that never changes (a content_key).
    immutable = False
    #: The cache keeps a master of its images (False: ``no_cache``).
    cacheable = True
    #: What show() of a missing image raises.
    missing_error = exception.ImageRefValidationFailed

    def publish(self, name, data):
        """Put ``data`` at the source under ``name``; return its href."""
        raise NotImplementedError()

    def missing_href(self):
        """An href of the driver's scheme that names no image."""
        raise NotImplementedError()

    def verified_checksum(self, data, given):
        """What download() returns for ``data`` when given ``given``.

        By default the checksum given, verified; None when none was.
        """
        return given

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(240, gentle=True))
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.work = os.path.join(self.tmp, 'work')
        self.dest_dir = os.path.join(self.tmp, 'dest')
        self.cache_dir = os.path.join(self.tmp, 'cache')
        for directory in (self.work, self.dest_dir):
            os.mkdir(directory)
        self.config(master_path=self.cache_dir, group='image_cache')

    # -- helpers --------------------------------------------------------

    def dest(self, name='disk'):
        return os.path.join(self.dest_dir, name)

    def assertNothingLeft(self, *kept):
        self.assertEqual(sorted(kept), sorted(os.listdir(self.dest_dir)))

    def publish_hostile(self, name, data):
        """Publish an image the source may itself refuse; its href."""
        return self.publish(name, data)

    def publish_image(self, kind, name, publish=None):
        """Publish an image made by qemu-img; return its href."""
        return (publish or self.publish)(
            name, read(images.make_image(kind, self.work, size=SIZE)))

    def assertSameDisk(self, path):
        """``path`` is the raw disk every test image holds."""
        reference = images.make_raw(self.work, size=SIZE)
        images.qemu_img('compare', '-f', 'raw', '-F', 'raw', reference,
                        path)

    def service(self, href):
        return image_service.get_image_service(href)

    def resolved(self, href):
        """The one-artifact href that ``download()`` takes."""
        return self.service(href).resolve(href).href

    def download(self, href, checksum=None):
        """download() as the contract has it: (return value, bytes).

        Into a new file each time: the file driver may hardlink the
        image to it, and writing to it again would write to the image.
        """
        service = self.service(href)
        path = self.dest('downloaded-%s' % uuid.uuid4().hex)
        try:
            with open(path, 'wb') as image_file:
                returned = service.download(href, image_file,
                                            checksum=checksum)
            self.assertEqual(returned, service.transfer_verified_checksum)
            return returned, read(path)
        finally:
            os.unlink(path)

    def run_cli(self, *args):
        """Run ``ironic-images ARGS`` in this process: (code, out, err)."""
        stdout, stderr = io.StringIO(), io.StringIO()
        with mock.patch('sys.stdout', stdout), \
                mock.patch('sys.stderr', stderr):
            code = main.main(list(args))
        return code, stdout.getvalue(), stderr.getvalue()

    def forbid_qemu_img(self):
        """Make any qemu-img run fail the test; return the runs seen."""
        runs = []
        real_execute = processutils.execute

        def refuse(*args, **kwargs):
            runs.append(args)
            raise AssertionError('qemu-img ran: %s' % (args,))

        def execute(*args, **kwargs):
            if args and os.path.basename(str(args[0])) == 'qemu-img':
                refuse(*args)
            return real_execute(*args, **kwargs)

        self.useFixture(fixtures.MockPatch(
            'ironic_images.qemu.process.execute', refuse))
        self.useFixture(fixtures.MockPatch(
            'oslo_concurrency.processutils.execute', execute))
        return runs

    # -- the driver itself ----------------------------------------------

    def test_get_image_service_returns_the_driver(self):
        href = self.publish('disk.img', DATA)
        service = self.service(href)
        self.assertIs(self.driver_class, type(service))
        self.assertIsInstance(service, service_base.BaseImageService)

    def test_resolve_names_one_image(self):
        href = self.publish('disk.img', DATA)
        resolved = self.service(href).resolve(href)
        self.assertIsInstance(resolved, service_base.ResolvedImage)
        self.assertEqual(self.immutable, resolved.content_key is not None)
        if resolved.properties is not None:
            self.assertEqual(len(DATA), resolved.properties['size'])
        self.assertEqual(DATA, self.download(resolved.href)[1])

    def test_show_has_size_updated_at_and_properties(self):
        href = self.resolved(self.publish('disk.img', DATA))
        service = self.service(href)
        service.validate_href(href)
        info = service.show(href)
        self.assertEqual(len(DATA), info['size'])
        self.assertIsInstance(info['properties'], dict)
        updated_at = info['updated_at']
        self.assertEqual(self.has_updated_at, updated_at is not None)
        if updated_at is not None:
            self.assertIsInstance(updated_at, datetime.datetime)
            self.assertIsNone(updated_at.tzinfo)

    def test_download_returns_what_it_verified(self):
        href = self.resolved(self.publish('disk.img', DATA))
        for given in (None, sha256(DATA)):
            returned, written = self.download(href, checksum=given)
            self.assertEqual(DATA, written)
            self.assertEqual(self.verified_checksum(DATA, given), returned)
            if returned is not None:
                algorithm, _sep, value = returned.partition(':')
                self.assertEqual(hashlib.new(algorithm, DATA).hexdigest(),
                                 value)

    def test_download_with_a_wrong_checksum(self):
        href = self.resolved(self.publish('disk.img', DATA))
        if self.verifies_given_checksum:
            self.assertRaises(exception.ImageChecksumError, self.download,
                              href, checksum=sha256(b'other'))
            self.assertRaises(exception.ImageChecksumError,
                              image_utils.fetch, None, href, self.dest(),
                              checksum=sha256(b'other'))
            self.assertNothingLeft()
        else:
            returned, written = self.download(href, sha256(b'other'))
            self.assertEqual((self.verified_checksum(DATA, None), DATA),
                             (returned, written))

    def test_missing_image(self):
        href = self.missing_href()
        self.assertTrue(issubclass(self.missing_error, (
            exception.ImageNotFound, exception.ImageRefValidationFailed)))
        service = self.service(href)
        # resolve() may ask the source (a tag), or leave it to show().
        self.assertRaises(self.missing_error,
                          lambda: service.show(service.resolve(href).href))
        self.assertRaises(self.missing_error, image_utils.fetch, None, href,
                          self.dest())
        self.assertNothingLeft()

    # -- through the library --------------------------------------------

    def test_fetch_verifies_and_reports_progress(self):
        href = self.publish('disk.img', DATA)
        seen = []
        fetched = image_utils.fetch(
            None, href, self.dest(), checksum=sha256(DATA),
            progress=lambda done, total: seen.append((done, total)))
        self.assertEqual(DATA, read(self.dest()))
        self.assertEqual(('raw', len(DATA), self.dest()),
                         (fetched.format, fetched.size, fetched.path))
        self.assertEqual(self.verified_checksum(DATA, sha256(DATA)),
                         fetched.checksum)
        self.assertEqual(len(DATA), seen[-1][0])
        self.assertIn(seen[-1][1], (None, len(DATA)))
        done = [d for d, _total in seen]
        self.assertEqual(sorted(done), done)
        self.assertNothingLeft('disk')

    def test_fetch_to_raw_converts_qcow2(self):
        href = self.publish_image('qcow2', 'disk.qcow2')
        fetched = image_utils.fetch_to_raw(None, href, self.dest())
        self.assertEqual(('raw', 'qcow2', SIZE), (
            fetched.format, fetched.source_format, fetched.virtual_size))
        self.assertSameDisk(self.dest())
        self.config(stream_qcow2=False, group='image_convert')
        image_utils.fetch_to_raw(None, href, self.dest('converted'))
        self.assertSameDisk(self.dest('converted'))
        self.assertNothingLeft('disk', 'converted')

    def test_backing_file_is_refused_before_qemu_img_runs(self):
        href = self.publish_image('qcow2-backing-file', 'hostile.qcow2',
                                  self.publish_hostile)
        runs = self.forbid_qemu_img()
        cache = image_cache.ImageCache()
        for fetch in (image_utils.fetch, image_utils.fetch_to_raw,
                      lambda _ctx, href, dest: cache.fetch_image(
                          href, dest, force_raw=True),
                      lambda _ctx, href, dest: cache.fetch_image(
                          href, dest, force_raw=False)):
            error = self.assertRaises(exception.ImageUnacceptable, fetch,
                                      None, href, self.dest())
            self.assertIn('backing_file', str(error))
        code, _out, err = self.run_cli('fetch', '--raw', href, self.dest())
        self.assertEqual(1, code)
        self.assertIn('backing_file', err)
        self.assertEqual([], runs)
        self.assertNothingLeft()
        # A local image makes no cache directory at all.
        if os.path.isdir(self.cache_dir):
            self.assertEqual([], [name for name in os.listdir(self.cache_dir)
                                  if not name.startswith('.')])

    def test_image_cache(self):
        href = self.publish('disk.img', DATA)
        cache = image_cache.ImageCache()
        first = cache.fetch_image(href, self.dest('first'), force_raw=False,
                                  expected_checksum=sha256(DATA))
        second = cache.fetch_image(href, self.dest('second'),
                                   force_raw=False,
                                   expected_checksum=sha256(DATA))
        for result, name in ((first, 'first'), (second, 'second')):
            self.assertEqual(DATA, read(self.dest(name)))
            self.assertEqual(('raw', len(DATA)), (result.format, result.size))
        if self.cacheable:
            self.assertEqual((False, True), (first.hit, second.hit))
            self.assertEqual(first.master, second.master)
            self.assertTrue(os.path.samefile(self.dest('first'),
                                             self.dest('second')))
        else:
            self.assertEqual((None, None), (first.master, second.master))
            self.assertEqual((False, False), (first.hit, second.hit))

    def test_image_cache_converts_to_raw(self):
        href = self.publish_image('qcow2', 'disk.qcow2')
        result = image_cache.ImageCache().fetch_image(href, self.dest())
        self.assertEqual(('raw', SIZE), (result.format, result.size))
        self.assertSameDisk(self.dest())

    def test_command_line(self):
        href = self.publish('disk.img', DATA)
        one = self.resolved(href)
        code, out, err = self.run_cli('show', one, '-f', 'json')
        self.assertEqual((0, len(DATA)), (code, json.loads(out)['size']),
                         err)
        code, _out, err = self.run_cli('download', one, self.dest('dl'),
                                       '--checksum', sha256(DATA))
        self.assertEqual(0, code, err)
        self.assertEqual(DATA, read(self.dest('dl')))
        code, out, err = self.run_cli('fetch', href, self.dest('fetched'),
                                      '--checksum', sha256(DATA))
        self.assertEqual(0, code, err)
        self.assertIn('Wrote %s (raw' % self.dest('fetched'), out)
        self.assertEqual(DATA, read(self.dest('fetched')))
        qcow2 = self.publish_image('qcow2', 'disk.qcow2')
        code, _out, err = self.run_cli('fetch', '--raw', qcow2,
                                       self.dest('raw'))
        self.assertEqual(0, code, err)
        self.assertSameDisk(self.dest('raw'))
        code, out, err = self.run_cli('cache', 'fetch', '--raw', qcow2,
                                      self.dest('cached'))
        self.assertEqual(0, code, err)
        self.assertIn('not cached' if not self.cacheable else 'downloaded',
                      out)
        self.assertSameDisk(self.dest('cached'))


class ChangingSourceContractTests(object):
    """What a source whose image can change under one href promises.

    Mixed in beside :class:`DriverContractTests`; :meth:`publish` with a
    name already published replaces the image.
    """

    def test_image_cache_downloads_a_changed_image_again(self):
        href = self.publish('disk.img', DATA)
        cache = image_cache.ImageCache()
        first = cache.fetch_image(href, self.dest('first'), force_raw=False)
        self.assertIsNotNone(first.master)
        self.assertTrue(cache.fetch_image(href, self.dest('again'),
                                          force_raw=False).hit)
        self.publish('disk.img', NEW_DATA)
        changed = cache.fetch_image(href, self.dest('changed'),
                                    force_raw=False)
        self.assertFalse(changed.hit)
        self.assertEqual(len(NEW_DATA), changed.size)
        self.assertEqual((DATA, DATA, NEW_DATA), (
            read(self.dest('first')), read(self.dest('again')),
            read(self.dest('changed'))))


class RevalidatedSourceContractTests(ChangingSourceContractTests):
    """A changing source with no content key: the cache asks the driver.

    The default ``cache_validators`` and ``is_unchanged`` of base.py, or
    the driver's own.
    """

    def test_is_unchanged_until_the_image_changes(self):
        href = self.publish('disk.img', DATA)
        service = self.service(href)
        validators = service.cache_validators(service.show(href))
        self.assertEqual({'etag', 'last_modified', 'fingerprint'},
                         set(validators))
        self.assertTrue(service.is_unchanged(href, **validators))
        self.publish('disk.img', NEW_DATA)
        self.assertFalse(self.service(href).is_unchanged(href,
                                                         **validators))
