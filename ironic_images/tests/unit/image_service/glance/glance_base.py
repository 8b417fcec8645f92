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

"""What the unit tests of the Glance driver, its client and the API share."""

import fixtures
import requests_mock.contrib.fixture

from ironic_images.image_service.glance import client as glance_client
from ironic_images.tests import base

ENDPOINT = 'http://glance.test:9292'


class GlanceMockTestCase(base.TestCase):
    """A test with a requests-mock Glance at :data:`ENDPOINT`, no sleeps.

    ``self.mocker`` answers the requests; ``self.sleep`` is the mock of
    the retry loop's sleep. keystoneauth sessions are not shared between
    tests.
    """

    def setUp(self):
        super().setUp()
        glance_client._SESSIONS.clear()
        self.addCleanup(glance_client._SESSIONS.clear)
        self.mocker = self.useFixture(
            requests_mock.contrib.fixture.Fixture())
        self.sleep = self.useFixture(fixtures.MockPatch(
            'ironic_images.image_service.glance.client._sleep')).mock
        # Resumed transfers wait too.
        self.useFixture(fixtures.MockPatch(
            'ironic_images.transfer.resumable.time.sleep'))
        self.config(auth_type='none', endpoint_override=ENDPOINT,
                    group='glance')
