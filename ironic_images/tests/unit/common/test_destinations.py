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

"""Tests of the classification of destination paths."""

import os

from ironic_images.common import destinations
from ironic_images import exception
from ironic_images.tests import base


class ClassifyTestCase(base.TestCase):

    def path(self, name):
        return os.path.join(self.images_dir, name)

    def test_a_new_file(self):
        dest = destinations.classify(self.path('new'))
        self.assertEqual((destinations.FILE, self.path('new')),
                         (dest.kind, dest.target))
        self.assertTrue(dest.is_file)
        self.assertFalse(dest.in_place)

    def test_an_existing_file(self):
        open(self.path('old'), 'w').close()
        self.assertEqual(destinations.FILE,
                         destinations.classify(self.path('old')).kind)

    def test_a_symlink_is_followed(self):
        open(self.path('target'), 'w').close()
        os.symlink('target', self.path('link'))
        dest = destinations.classify(self.path('link'))
        self.assertEqual((destinations.FILE, self.path('target'),
                          self.path('link')),
                         (dest.kind, dest.target, dest.path))

    def test_a_symlink_to_a_fifo_is_a_stream(self):
        os.mkfifo(self.path('fifo'))
        os.symlink(self.path('fifo'), self.path('link'))
        dest = destinations.classify(self.path('link'))
        self.assertEqual((destinations.STREAM, self.path('fifo')),
                         (dest.kind, dest.target))
        self.assertTrue(dest.in_place)

    def test_dev_null_is_a_stream(self):
        self.assertEqual(destinations.STREAM,
                         destinations.classify('/dev/null').kind)

    def test_own_descriptors_are_streams_written_through_them(self):
        read_end, write_end = os.pipe()
        self.addCleanup(os.close, read_end)
        self.addCleanup(os.close, write_end)
        for path in ('/proc/self/fd/%d' % write_end,
                     '/dev/fd/%d' % write_end,
                     '/proc/%d/fd/%d' % (os.getpid(), write_end)):
            dest = destinations.classify(path)
            self.assertEqual((destinations.STREAM, write_end, path),
                             (dest.kind, dest.fd, dest.target), path)

    def test_dev_stdout_is_descriptor_1(self):
        dest = destinations.classify('/dev/stdout')
        self.assertEqual((destinations.STREAM, 1), (dest.kind, dest.fd))

    def test_refused(self):
        os.symlink(self.path('nowhere'), self.path('dangling'))
        cases = {self.images_dir: 'it is a directory',
                 self.path('dangling'): 'symlink to nothing',
                 self.path('no/dest'): 'its directory does not exist',
                 '/proc/self/fd/987654': 'descriptor 987654'}
        for path, reason in cases.items():
            error = self.assertRaises(exception.InvalidDestination,
                                      destinations.classify, path, 'href')
            self.assertIn(reason, str(error))
            self.assertIsInstance(error, exception.ImageDownloadFailed)

    def test_check_fits(self):
        destinations.check_fits('/dev/x', 10, 10)
        error = self.assertRaises(exception.ImageUnacceptable,
                                  destinations.check_fits, '/dev/x', 11, 10)
        self.assertEqual('device_size', error.kwargs['check'])
