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

"""The suite's own harness: hang alarms must not disarm the test timeout."""

import signal
import time

from ironic_images.tests.reliability import base


class TestBounded(base.ReliabilityTestCase):

    def test_outer_timeout_survives(self):
        # ReliabilityTestCase armed fixtures.Timeout (SIGALRM, the same
        # timer): after a bounded block it must still be armed.
        outer = signal.getitimer(signal.ITIMER_REAL)[0]
        self.assertGreater(outer, 0)
        with base.bounded(5):
            pass
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        self.assertGreater(left, 0)
        self.assertLessEqual(left, outer)

    def test_hang_raised(self):
        def spin():
            with base.bounded(0.05, 'the spin'):
                while True:
                    time.sleep(0.01)

        e = self.assertRaises(base.Hang, spin)
        self.assertIn('the spin', str(e))
        self.assertGreater(signal.getitimer(signal.ITIMER_REAL)[0], 0)
