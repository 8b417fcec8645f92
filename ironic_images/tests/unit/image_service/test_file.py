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

"""Tests of the file:// driver's allow-list and trusted local files."""

import io
import os
import threading

import fixtures

from ironic_images import exception
from ironic_images.image_service import file as file_service
from ironic_images.tests import base

DATA = b'a local image' * 100


class TrustedLocalFileTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        # Not under [file]allowed_paths (the test's images_dir).
        self.home = self.useFixture(fixtures.TempDir()).path
        self.image = os.path.join(self.home, 'disk.img')
        self.other = os.path.join(self.home, 'other.img')
        for path in (self.image, self.other):
            with open(path, 'wb') as f:
                f.write(DATA)
        self.service = file_service.FileImageService()

    def href(self, path):
        return 'file://' + path

    def test_outside_the_allow_list_refused(self):
        error = self.assertRaises(exception.ImageRefValidationFailed,
                                  self.service.show, self.href(self.image))
        self.assertIn('allowed_paths', str(error))

    def test_the_named_file_only(self):
        with file_service.trusted_local_file(self.image) as href:
            self.assertEqual(self.href(self.image), href)
            self.assertEqual(len(DATA), self.service.show(href)['size'])
            out = io.BytesIO()
            self.service.download(href, out)
            self.assertEqual(DATA, out.getvalue())
            self.assertRaises(exception.ImageRefValidationFailed,
                              self.service.show, self.href(self.other))
        self.assertRaises(exception.ImageRefValidationFailed,
                          self.service.show, self.href(self.image))

    def test_relative_path_and_symlink_resolved(self):
        link = os.path.join(self.home, 'link.img')
        os.symlink(self.image, link)
        old = os.getcwd()
        os.chdir(self.home)
        self.addCleanup(os.chdir, old)
        with file_service.trusted_local_file('link.img') as href:
            self.assertEqual(self.href(self.image), href)
            self.assertEqual(len(DATA), self.service.show(href)['size'])

    def test_odd_characters_round_trip(self):
        odd = os.path.join(self.home, 'disk 100%#?.img')
        os.rename(self.image, odd)
        with file_service.trusted_local_file(odd) as href:
            self.assertNotIn(' ', href)
            self.assertEqual(odd, self.service.validate_href(href))

    def test_always_blocked_stays_blocked(self):
        with file_service.trusted_local_file('/etc/hostname') as href:
            error = self.assertRaises(exception.ImageRefValidationFailed,
                                      self.service.show, href)
        self.assertIn('never allowed', str(error))

    def test_other_threads_do_not_see_it(self):
        errors = []

        def _show(href):
            try:
                self.service.show(href)
            except exception.ImageRefValidationFailed as error:
                errors.append(error)

        with file_service.trusted_local_file(self.image) as href:
            thread = threading.Thread(target=_show, args=(href,))
            thread.start()
            thread.join()
            self.service.show(href)
        self.assertEqual(1, len(errors))
