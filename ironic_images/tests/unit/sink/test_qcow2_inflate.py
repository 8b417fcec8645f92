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

import threading
from unittest import mock

from ironic_images import exception
from ironic_images.sink import qcow2_inflate
from ironic_images.tests import base
from ironic_images.tests.unit.sink import qcow2_builder as qb

CS = 1 << 16


def cluster(number):
    return bytes([number % 251]) * CS


class ClusterInflaterTestCase(base.TestCase):

    def inflater(self, compression='zlib'):
        inflater = qcow2_inflate.ClusterInflater(compression, CS, 'href')
        self.addCleanup(inflater.close)
        return inflater

    def test_every_cluster_comes_back_once_in_order(self):
        for method in ('zlib', 'zstd'):
            inflater = self.inflater(method)
            back = []
            for number in range(100):
                back += inflater.submit(qb.compress(cluster(number), method),
                                        number)
            back += inflater.drain()
            self.assertEqual(list(range(100)), [guest for _, guest in back])
            for data, guest in back:
                self.assertEqual(cluster(guest), bytes(data))

    def test_the_queue_is_bounded(self):
        release = threading.Event()
        inflater = self.inflater()
        real = inflater._decompress

        def slow(compressed):
            release.wait(10)
            return real(compressed)

        inflater._decompress = slow
        limit = qcow2_inflate.THREADS * qcow2_inflate._QUEUED_PER_THREAD
        payload = qb.compress(cluster(1), 'zlib')
        for number in range(limit):
            self.assertEqual([], inflater.submit(payload, number))
        release.set()
        # One more than the limit: the caller waits for the oldest.
        back = inflater.submit(payload, limit)
        self.assertGreaterEqual(len(back), 1)
        self.assertEqual(0, back[0][1])

    def test_runs_on_other_threads(self):
        seen = set()
        inflater = self.inflater()
        real = inflater._decompress

        def record(compressed):
            seen.add(threading.current_thread().name)
            return real(compressed)

        inflater._decompress = record
        inflater.submit(qb.compress(cluster(1), 'zlib'), 0)
        inflater.drain()
        self.assertEqual(1, len(seen))
        self.assertTrue(seen.pop().startswith('qcow2-inflate'))

    def test_corrupt_cluster_raises_when_collected(self):
        inflater = self.inflater()

        def collect():
            # submit() hands back what is done already: it may raise too.
            inflater.submit(b'\xff' * 100, 0)
            inflater.drain()

        error = self.assertRaises(exception.ImageUnacceptable, collect)
        self.assertEqual('qcow2_stream', error.kwargs['check'])
        self.assertIn('corrupt compressed cluster', str(error))

    def test_short_cluster_is_refused(self):
        for method in ('zlib', 'zstd'):
            inflater = self.inflater(method)

            def collect():
                inflater.submit(qb.compress(b'x' * (CS - 1), method), 0)
                inflater.drain()

            error = self.assertRaises(exception.ImageUnacceptable, collect)
            self.assertIn('decompresses to %d bytes' % (CS - 1), str(error))

    def test_close_stops_the_threads_and_drops_the_queue(self):
        inflater = self.inflater()
        inflater.submit(qb.compress(cluster(1), 'zlib'), 0)
        with mock.patch.object(inflater._pool, 'shutdown',
                               wraps=inflater._pool.shutdown) as shutdown:
            inflater.close()
        shutdown.assert_called_once_with(wait=True, cancel_futures=True)
        self.assertEqual([], inflater.drain())
        inflater.close()

    def test_no_threads_without_compressed_clusters(self):
        inflater = self.inflater()
        self.assertEqual([], inflater.drain())
        self.assertIsNone(inflater._pool)
