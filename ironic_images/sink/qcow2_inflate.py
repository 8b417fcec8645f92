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

"""Decompression of qcow2 compressed clusters, on several threads.

qemu-img inflates compressed clusters in a thread pool; a
:class:`ClusterInflater` does the same for
:class:`ironic_images.sink.qcow2_stream.Qcow2ToRaw`, since zlib and zstd let
other threads run while they work. The caller places the clusters it gets
back, so every write to the disk stays in the caller's thread, and the
clusters in flight are bounded so memory is too.
"""

import collections
from concurrent import futures
import os
import threading
import zlib

import zstandard

from ironic_images._i18n import _
from ironic_images import exception

#: Threads inflating clusters: as many as the CPUs we may run on, up to 8.
THREADS = max(1, min(8, len(os.sched_getaffinity(0))))
# Clusters queued per thread before the caller waits for the oldest.
_QUEUED_PER_THREAD = 4
#: Compressed clusters in flight at most (queued, inflating or inflated
#: and not yet taken back): each holds its compressed bytes (up to two
#: clusters) or the cluster they make.
QUEUE_DEPTH = THREADS * _QUEUED_PER_THREAD


class ClusterInflater:
    """Inflate compressed clusters in the background, oldest first out.

    :param compression: ``'zlib'`` or ``'zstd'``.
    :param cluster_size: bytes every compressed cluster must inflate to.
    :param image_href: the image, for messages.
    """

    def __init__(self, compression, cluster_size, image_href):
        self._cs = cluster_size
        self._href = image_href
        self._decompress = (self._zstd if compression == 'zstd'
                            else self._zlib)
        self._local = threading.local()
        self._queue = collections.deque()
        self._pool = None

    def submit(self, compressed, guest):
        """Queue one compressed cluster for inflation.

        :param compressed: its bytes (copied: the caller may reuse them).
        :param guest: what the caller wants back with the cluster.
        :returns: the clusters done so far, oldest first, as
            ``(cluster, guest)``; waits for the oldest when too many are
            queued.
        :raises: ImageUnacceptable for a corrupt cluster.
        """
        if self._pool is None:
            self._pool = futures.ThreadPoolExecutor(
                THREADS, thread_name_prefix='qcow2-inflate')
        self._queue.append(
            (self._pool.submit(self._decompress, bytes(compressed)), guest))
        return self._done(len(self._queue) - QUEUE_DEPTH)

    def drain(self):
        """Wait for every queued cluster.

        :returns: ``(cluster, guest)`` of each, oldest first.
        :raises: ImageUnacceptable for a corrupt cluster.
        """
        return self._done(len(self._queue))

    def close(self):
        """Stop the threads; queued clusters are dropped."""
        self._queue.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _done(self, must_wait):
        ready = []
        while self._queue and (must_wait > 0 or self._queue[0][0].done()):
            future, guest = self._queue.popleft()
            ready.append((future.result(), guest))
            must_wait -= 1
        return ready

    def _refuse(self, detail):
        raise exception.ImageUnacceptable(
            image_href=self._href, check='qcow2_stream',
            reason=_('qcow2_stream check failed: %s') % detail)

    def _checked(self, cluster):
        if len(cluster) != self._cs:
            self._refuse(_('a compressed cluster decompresses to %d bytes')
                         % len(cluster))
        return cluster

    def _zlib(self, compressed):
        """The first cluster of output (as qemu takes it), whole."""
        try:
            return self._checked(
                zlib.decompressobj(-15).decompress(compressed, self._cs))
        except zlib.error as error:
            self._refuse(_('corrupt compressed cluster: %s') % error)

    def _zstd(self, compressed):
        """One frame of exactly one cluster (qemu refuses a longer one)."""
        # A decompressor per thread: they are not safe to share.
        decompressor = getattr(self._local, 'zstd', None)
        if decompressor is None:
            decompressor = self._local.zstd = zstandard.ZstdDecompressor()
        try:
            # One read stops at the end of the frame; a second would decode
            # the sector padding after it as a new frame.
            return self._checked(decompressor.stream_reader(
                compressed, read_across_frames=False).read(self._cs + 1))
        except zstandard.ZstdError as error:
            self._refuse(_('corrupt compressed cluster: %s') % error)
