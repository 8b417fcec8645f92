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

"""Base classes of the unit and functional tests."""

import errno
import mmap
import os

import fixtures
from oslo_config import fixture as config_fixture
from oslotest import base

from ironic_images.conf import CONF
from ironic_images import image_service


class TestCase(base.BaseTestCase):
    """A test with a clean configuration and a private images directory.

    ``self.images_dir`` is a temp dir set as the only
    ``[file]allowed_paths`` entry; ``self.config(...)`` overrides options.
    """

    def setUp(self):
        super().setUp()
        self.cfg_fixture = self.useFixture(config_fixture.Config(CONF))
        self.images_dir = self.useFixture(fixtures.TempDir()).path
        self.config(allowed_paths=[self.images_dir], group='file')
        image_service._driver_class.cache_clear()
        self.addCleanup(image_service._driver_class.cache_clear)

    def config(self, **kw):
        """Override options for this test; ``group=`` names the group."""
        self.cfg_fixture.config(**kw)


def supports_direct_io(directory):
    """Whether the file system of ``directory`` takes O_DIRECT writes.

    Asked of the file system itself (one aligned block written to a probe
    file), not of the code under test.
    """
    probe = os.path.join(directory, '.direct-io-probe')
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT)
        try:
            # A page of anonymous memory: aligned, as O_DIRECT wants.
            with mmap.mmap(-1, mmap.PAGESIZE) as block:
                os.write(fd, block)
        finally:
            os.close(fd)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
            raise
        return False
    finally:
        if os.path.exists(probe):
            os.unlink(probe)
    return True
