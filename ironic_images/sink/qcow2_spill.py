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

"""The host clusters a streaming qcow2 decoder may still have to read.

:class:`SpillFile` keeps, in an unnamed temp file at their own offsets,
the clusters of a qcow2 stream that were passed before anything placed
them (*free* clusters: unused so far, or holding compressed data), and
the :data:`KEPT_AFTER` clusters after each free one whatever they held.
A compressed cluster's bytes start in a free cluster and run on for at
most two more clusters (its length is at most two clusters), so every
byte such a run covers is in the file, as qemu would read it from the
image. A read that would need a byte the file does not have refuses the
image rather than read zeros in its place.
"""

import os
import tempfile

from ironic_images._i18n import _
from ironic_images import exception

#: Clusters kept after each free one: the most a compressed run started in
#: a free cluster can reach past it.
KEPT_AFTER = 2


class SpillFile:
    """Host clusters of a qcow2 stream, kept to be read back later.

    :param cluster_size: the image's cluster size.
    :param spill_dir: where to make the file (only when needed).
    :param image_href: the image, for messages.
    """

    def __init__(self, cluster_size, spill_dir, image_href):
        self._cs = cluster_size
        self._dir = spill_dir
        self._href = image_href
        self._file = None
        # One bit a host cluster.
        self._free = bytearray()
        self._kept = bytearray()
        self._last_free = -KEPT_AFTER - 1

    def take(self, index, data, free):
        """Keep host cluster ``index`` if a later read may need it.

        :param index: the cluster's number in the file (every cluster is
            taken once, in file order).
        :param data: its bytes (a whole cluster).
        :param free: whether nothing used the cluster when it was passed
            (unused, or compressed data): a later entry may point into it.
        """
        if free:
            self._last_free = index
            _set(self._free, index)
        elif index - self._last_free > KEPT_AFTER:
            return
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self._dir)
        _pwrite_all(self._file.fileno(), data, index * self._cs)
        _set(self._kept, index)

    def is_free(self, index):
        """Whether a later entry may point into host cluster ``index``."""
        return _get(self._free, index)

    def read(self, offset, length, passed):
        """The bytes of the file at ``offset``, as qemu would read them.

        :param offset: a byte offset in a free cluster.
        :param length: bytes to read (up to two clusters).
        :param passed: clusters of the stream seen so far; bytes past
            them are past the end of the image and read as zeros.
        :raises: ImageUnacceptable when ``offset`` is not in a free
            cluster, or the bytes run into one that was not kept.
        """
        first = offset // self._cs
        if not self.is_free(first):
            self._refuse(_('cluster at %d is used twice') % offset)
        last = min((offset + length - 1) // self._cs, passed - 1)
        for index in range(first + 1, last + 1):
            if not _get(self._kept, index):
                self._refuse(_('compressed data at %(offset)d runs into '
                               'cluster %(index)d, which was not kept')
                             % {'offset': offset, 'index': index})
        data = os.pread(self._file.fileno(), length, offset)
        # Past the end of the file (and so of the image): zeros.
        return data + bytes(length - len(data))

    def close(self):
        """Drop the file; the object can no longer be used."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _refuse(self, detail):
        raise exception.ImageUnacceptable(
            image_href=self._href, check='qcow2_stream',
            reason=_('qcow2_stream check failed: %s') % detail)


def _set(bits, index):
    byte = index >> 3
    if byte >= len(bits):
        bits += bytes(byte + 1 - len(bits))
    bits[byte] |= 1 << (index & 7)


def _get(bits, index):
    byte = index >> 3
    return byte < len(bits) and bool(bits[byte] & (1 << (index & 7)))


def _pwrite_all(fd, data, offset):
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
