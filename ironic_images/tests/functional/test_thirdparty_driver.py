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

"""A third party adds a URL scheme through an entry point only.

The driver is the worked example of the contributor guide,
``thirdparty/zip_images.py``, loaded from that very file: a throw-away
distribution (a ``.dist-info`` with ``entry_points.txt``) is put on
``sys.path`` beside it, and nothing in ironic-images changes. It has
exactly the minimal contract (``download()`` takes no ``progress`` and
returns nothing), and passes the contract tests every in-tree driver
passes, through ``fetch``, ``fetch_to_raw``, the cache and the command.
"""

import importlib
import os
import pty
import shutil
import subprocess
import sys
import zipfile

import fixtures
import stevedore

from ironic_images import exception
from ironic_images import image_service
from ironic_images.image_service import file as file_service
from ironic_images import image_utils
from ironic_images.tests import base
from ironic_images.tests.functional import driver_contract

EXAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'thirdparty')
MODULE = 'zip_images'
EXAMPLE = os.path.join(EXAMPLE_DIR, MODULE + '.py')
ENTRY_POINT = 'zip = zip_images:ZipImageService'


def _forget():
    """Forget what stevedore and the registry know of the namespace."""
    stevedore.ExtensionManager.ENTRY_POINT_CACHE.pop(image_service.NAMESPACE,
                                                     None)
    sys.modules.pop(MODULE, None)
    importlib.invalidate_caches()
    image_service._driver_class.cache_clear()


class Distribution(fixtures.Fixture):
    """A distribution installed for one test: a ``.dist-info`` on sys.path.

    :param name: the distribution's name.
    :param entry_points: the lines of its ``[ironic_images.image_services]``.
    :param module_dir: where its modules are; put on sys.path too.
    """

    def __init__(self, name, entry_points, module_dir=EXAMPLE_DIR):
        super().__init__()
        self.name = name
        self.entry_points = entry_points
        self.module_dir = module_dir

    def _setUp(self):
        self.site = self.useFixture(fixtures.TempDir()).path
        dist_info = os.path.join(self.site, '%s-1.0.dist-info' % self.name)
        os.mkdir(dist_info)
        with open(os.path.join(dist_info, 'METADATA'), 'w') as f:
            f.write('Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n'
                    % self.name)
        with open(os.path.join(dist_info, 'entry_points.txt'), 'w') as f:
            f.write('[%s]\n%s\n' % (image_service.NAMESPACE,
                                    self.entry_points))
        # stevedore keeps the entry points of a namespace for the life of
        # the process (besides its per-sys.path cache on disk): give this
        # test its own.
        self.useFixture(fixtures.MonkeyPatch(
            'stevedore.extension.ExtensionManager.ENTRY_POINT_CACHE', {}))
        saved_path = list(sys.path)
        self.addCleanup(sys.path.__setitem__, slice(None), saved_path)
        self.addCleanup(_forget)
        self.paths = [self.site, self.module_dir]
        sys.path[:0] = self.paths
        _forget()

    def uninstall(self):
        for path in self.paths:
            sys.path.remove(path)
        _forget()


class EntryPointTest(base.TestCase):

    def install(self, entry_points, name='zip_images'):
        return self.useFixture(Distribution(name, entry_points))

    def test_scheme_added_by_entry_point(self):
        self.install(ENTRY_POINT)
        self.config(enabled_image_services=['file', 'zip'])
        self.assertIn('zip', stevedore.ExtensionManager(
            image_service.NAMESPACE).names())
        client = object()
        service = image_service.get_image_service('zip:///x.zip#disk.img',
                                                  client=client)
        module = sys.modules[MODULE]
        self.assertIs(module.ZipImageService, type(service))
        self.assertEqual(EXAMPLE, module.__file__)
        self.assertIs(client, service.client)
        # The built-in schemes are unaffected.
        self.assertIsInstance(
            image_service.get_image_service('file:///var/lib/x.img'),
            file_service.FileImageService)

    def test_installed_but_not_enabled(self):
        self.install(ENTRY_POINT)
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service,
                                'zip:///x.zip#disk.img')
        self.assertIn('"zip"', str(exc))
        self.assertIn('[DEFAULT]enabled_image_services', str(exc))
        self.assertNotIn(MODULE, sys.modules)

    def test_broken_entry_point(self):
        self.install('broken = thirdparty_missing:Nope', 'thirdparty_broken')
        self.config(enabled_image_services=['file', 'broken'])
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service,
                                'broken://h/x.img')
        self.assertIsInstance(exc, exception.ImageRefValidationFailed)
        self.assertIn('"broken"', str(exc))
        self.assertIn('failed to load', str(exc))
        self.assertIn('thirdparty_missing:Nope', str(exc))

    def test_missing_class_in_existing_module(self):
        self.install('zip = zip_images:NoSuchClass')
        self.config(enabled_image_services=['zip'])
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service,
                                'zip:///x.zip#disk.img')
        self.assertIn('failed to load', str(exc))
        self.assertIn('zip_images:NoSuchClass', str(exc))

    def test_gone_after_uninstall(self):
        distribution = self.install(ENTRY_POINT)
        self.config(enabled_image_services=['zip'])
        image_service.get_image_service('zip:///x.zip#disk.img')
        distribution.uninstall()
        exc = self.assertRaises(exception.UnknownImageService,
                                image_service.get_image_service,
                                'zip:///x.zip#disk.img')
        self.assertIn('no driver is installed', str(exc))


class ZipDriverContractTest(driver_contract.DriverContractTests,
                            driver_contract.RevalidatedSourceContractTests,
                            base.TestCase):
    """The worked example, a minimal driver, under the driver contract."""

    missing_error = exception.ImageNotFound

    def setUp(self):
        super().setUp()
        self.distribution = self.useFixture(Distribution('zip_images',
                                                         ENTRY_POINT))
        self.config(enabled_image_services=['file', 'zip'])
        self.driver_class = importlib.import_module(MODULE).ZipImageService

    def verified_checksum(self, data, given):
        return None

    def publish(self, name, data):
        archive = os.path.join(self.images_dir, name + '.zip')
        with zipfile.ZipFile(archive, 'w', zipfile.ZIP_DEFLATED) as bundle:
            bundle.writestr(name, data)
        return 'zip://%s#%s' % (archive, name)

    def missing_href(self):
        return 'zip://%s#disk.img' % os.path.join(self.images_dir,
                                                  'missing.zip')

    def test_the_example_is_loaded_through_its_entry_point(self):
        module = sys.modules[MODULE]
        self.assertEqual(EXAMPLE, module.__file__)
        self.assertIn(self.distribution.site, sys.path)
        self.assertFalse(self.driver_class.reports_progress)

    def test_an_archive_outside_allowed_paths_is_refused(self):
        outside = os.path.join(self.work, 'outside.zip')
        with zipfile.ZipFile(outside, 'w') as bundle:
            bundle.writestr('disk.img', b'x')
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  image_utils.fetch, None,
                                  'zip://%s#disk.img' % outside, self.dest())
        self.assertIn('allowed_paths', str(error))
        self.assertNothingLeft()

    def run_command(self, *args, path=None):
        """``python -m ironic_images.cmd.main ARGS`` with stderr a tty.

        A new process finds the driver through its entry point alone;
        with a terminal, the command draws progress.

        :param path: ``PATH`` for the command, or None for this one's.
        """
        conf = os.path.join(self.tmp, 'ironic-images.conf')
        with open(conf, 'w') as f:
            f.write('[DEFAULT]\nenabled_image_services = file,zip\n'
                    '[file]\nallowed_paths = %s\n' % self.images_dir)
        root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.dirname(os.path.abspath(__file__)))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            self.distribution.paths + [root]))
        if path is not None:
            env['PATH'] = path
        terminal, tty = pty.openpty()
        try:
            result = subprocess.run(
                [sys.executable, '-m', 'ironic_images.cmd.main',
                 '--config-file', conf] + list(args),
                stdout=subprocess.PIPE, stderr=tty, env=env, timeout=120)
            os.close(tty)
            tty = None
            err = b''
            while True:
                try:
                    chunk = os.read(terminal, 65536)
                except OSError:  # EIO: the other end is closed
                    break
                if not chunk:
                    break
                err += chunk
        finally:
            os.close(terminal)
            if tty is not None:
                os.close(tty)
        return result.returncode, result.stdout.decode(), err.decode(
            errors='replace')

    def test_the_command_in_a_new_process(self):
        href = self.publish('disk.img', driver_contract.DATA)
        code, out, err = self.run_command('show', href, '-f', 'json')
        self.assertEqual(0, code, err)
        self.assertIn('"size": %d' % len(driver_contract.DATA), out)
        code, out, err = self.run_command(
            'download', href, self.dest('downloaded'), '--checksum',
            driver_contract.sha256(driver_contract.DATA))
        self.assertEqual(0, code, err)
        self.assertEqual(driver_contract.DATA,
                         driver_contract.read(self.dest('downloaded')))
        qcow2 = self.publish_image('qcow2', 'disk.qcow2')
        code, out, err = self.run_command('fetch', '--raw', qcow2,
                                          self.dest('raw'))
        self.assertEqual(0, code, err)
        self.assertIn('Wrote %s (raw' % self.dest('raw'), out)
        self.assertSameDisk(self.dest('raw'))
        self.assertNothingLeft('downloaded', 'raw')

    def test_the_command_refuses_a_backing_file_without_qemu_img(self):
        hostile = self.publish_image('qcow2-backing-file', 'hostile.qcow2')
        # A qemu-img first on PATH that only records that it ran.
        trap = os.path.join(self.tmp, 'bin')
        ran = os.path.join(self.tmp, 'qemu-img-ran')
        os.mkdir(trap)
        with open(os.path.join(trap, 'qemu-img'), 'w') as f:
            f.write('#!/bin/sh\necho "$@" >> %s\nexit 1\n' % ran)
        os.chmod(os.path.join(trap, 'qemu-img'), 0o755)
        path = os.pathsep.join([trap, os.environ.get('PATH', '')])
        self.assertEqual(os.path.join(trap, 'qemu-img'),
                         shutil.which('qemu-img', path=path))
        for raw in ([], ['--raw']):
            code, _out, err = self.run_command('fetch', *raw, hostile,
                                               self.dest(), path=path)
            self.assertEqual(1, code, err)
            self.assertIn('backing_file', err)
        self.assertFalse(os.path.exists(ran))
        self.assertNothingLeft()
