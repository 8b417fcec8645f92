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

"""Regular-file outputs: the umask's mode everywhere, symlinks followed.

Every output path (fetch, a conversion, the download of the Nova-style
API and of file://, the cache hand-out) makes a file of mode
``0666 & ~umask``, as ``open()`` would. A destination that is a symlink
is followed: its target is replaced and the link stays; a symlink to
nothing, a directory and a missing directory are refused.
"""

import os
import stat

import fixtures
from oslo_utils import units

from ironic_images import api
from ironic_images import exception
from ironic_images import image_cache
from ironic_images import image_utils
from ironic_images.tests import base
from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import nginx

SIZE = 4 * units.Mi


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class Umask(fixtures.Fixture):

    def __init__(self, mask):
        super().__init__()
        self.mask = mask

    def _setUp(self):
        previous = os.umask(self.mask)
        self.addCleanup(os.umask, previous)


class FileModeTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.Timeout(120, gentle=True))
        self.server = self.useFixture(nginx.NginxFixture(self.images_dir))
        self.out = self.useFixture(fixtures.TempDir()).path
        self.config(tempdir=self.useFixture(fixtures.TempDir()).path)

    def publish(self, kind):
        path = images.make_image(kind, self.images_dir, size=SIZE)
        os.chmod(path, 0o644)
        return os.path.basename(path)

    def dest(self, name='disk'):
        return os.path.join(self.out, name)


class TestModes(FileModeTestCase):

    def check_every_output(self, umask):
        self.useFixture(Umask(umask))
        expected = 0o666 & ~umask
        self.config(permitted_formats=['raw', 'qcow2', 'vhdx'],
                    group='image_format')
        qcow2 = self.server.url_for(self.publish('qcow2'))
        image_utils.fetch(None, qcow2, self.dest('fetch'))
        image_utils.fetch_to_raw(None, qcow2, self.dest('streamed'))
        image_utils.fetch_to_raw(
            None, self.server.url_for(self.publish('vhdx')),
            self.dest('converted'))
        image_utils.convert_image(self.dest('fetch'), self.dest('convert'),
                                  'raw', 'qcow2')
        api.API().download(None, qcow2, dest_path=self.dest('download'))
        cache = image_cache.ImageCache(
            master_dir=os.path.join(self.out, 'master'))
        cache.fetch_image(qcow2, self.dest('cached'))
        made = sorted(n for n in os.listdir(self.out) if n != 'master')
        self.assertEqual(['cached', 'convert', 'converted', 'download',
                          'fetch', 'streamed'], made)
        self.assertEqual({name: oct(expected) for name in made},
                         {name: oct(mode(self.dest(name))) for name in made})

    def test_umask_022(self):
        self.check_every_output(0o022)

    def test_umask_027(self):
        self.check_every_output(0o027)


class TestFileDownloads(FileModeTestCase):
    """file:// into a named file: a hardlink only of this process's mode."""

    def test_hardlink_when_the_image_has_the_mode_of_a_new_file(self):
        self.useFixture(Umask(0o022))
        name = self.publish('qcow2')
        source = os.path.join(self.images_dir, name)
        api.API().download(None, 'file://' + source,
                           dest_path=self.dest())
        self.assertEqual(os.stat(source).st_ino, os.stat(self.dest()).st_ino)
        self.assertEqual(0o644, mode(self.dest()))

    def test_copy_when_the_image_has_another_mode(self):
        self.useFixture(Umask(0o022))
        name = self.publish('qcow2')
        source = os.path.join(self.images_dir, name)
        os.chmod(source, 0o600)
        api.API().download(None, 'file://' + source,
                           dest_path=self.dest())
        self.assertNotEqual(os.stat(source).st_ino,
                            os.stat(self.dest()).st_ino)
        self.assertEqual(0o644, mode(self.dest()))
        self.assertEqual(0o600, mode(source))


class TestSymlinks(FileModeTestCase):

    def test_a_symlink_is_followed_and_stays(self):
        target = self.dest('target')
        with open(target, 'wb') as f:
            f.write(b'old')
        link = self.dest('link')
        os.symlink('target', link)
        image_utils.fetch_to_raw(
            None, self.server.url_for(self.publish('qcow2')), link)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(SIZE, os.path.getsize(target))
        self.assertEqual(['link', 'target'], sorted(os.listdir(self.out)))

    def test_download_through_a_symlink(self):
        link = self.dest('link')
        os.symlink(self.dest('target'), link)
        with open(self.dest('target'), 'wb'):
            pass
        api.API().download(None, self.server.url_for(self.publish('raw')),
                           dest_path=link)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(SIZE, os.path.getsize(self.dest('target')))

    def test_a_symlink_to_nothing_is_refused(self):
        link = self.dest('link')
        os.symlink(self.dest('nowhere'), link)
        href = self.server.url_for(self.publish('raw'))
        for call in (lambda: image_utils.fetch(None, href, link),
                     lambda: api.API().download(None, href, dest_path=link)):
            error = self.assertRaises(exception.InvalidDestination, call)
            self.assertIn('symlink to nothing', str(error))
        self.assertEqual(['link'], os.listdir(self.out))

    def test_a_directory_is_refused(self):
        self.assertRaises(exception.InvalidDestination, image_utils.fetch,
                          None, self.server.url_for(self.publish('raw')),
                          self.out)
        self.assertEqual([], os.listdir(self.out))
