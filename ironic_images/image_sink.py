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

"""The destination of a fetch: decompress, inspect and write sparse.

An :class:`ImageSink` is a writable binary file object, so every driver,
built in or third party, can ``download()`` into it without knowing it is
there. Bytes written to it are, in one pass and in the pipeline's writer
thread:

1. decompressed when their first bytes are zstd, gzip or xz magic
   (:mod:`ironic_images.decompress`, output capped);
2. fed to a format inspector until it has seen enough to decide;
3. written at their offset, with all-zero blocks left as holes.

A transfer that restarts from the first byte rewinds the sink with
``seek(0)``, which starts all three over.
"""

import io
import os

from ironic_images import decompress

# Zero blocks of this size become holes; 64 KiB keeps the per-block Python
# work small next to the copy and compare (about 10 GB/s here).
SPARSE_BLOCK = 64 * 1024
_ZEROS = bytes(SPARSE_BLOCK)
# Most data blocks start with a non-zero byte: looking at a few bytes
# first spares them the copy and compare of the whole block.
_PREFIX = 64
_ZERO_PREFIX = bytes(_PREFIX)


class SinkResult:
    """What an :class:`ImageSink` received and wrote.

    :ivar received: bytes written to the sink (compressed, if it was).
    :ivar size: bytes of the image written to the file.
    :ivar compression: ``'zstd'``, ``'gzip'``, ``'xz'`` or None.
    :ivar detected: the inspector's result, or None without an inspector.
    """

    def __init__(self, received, size, compression, detected):
        self.received = received
        self.size = size
        self.compression = compression
        self.detected = detected


class ImageSink(io.RawIOBase):
    """A file object that turns downloaded bytes into an image file.

    :param image_file: a binary file opened for writing at offset 0, with
        a file descriptor (the sink writes with ``pwrite``).
    :param image_href: the image, for error messages.
    :param inspector: None, or an object with ``update(data)``,
        ``complete``, ``reset()``, ``finish(size)`` and ``result()`` (a
        :class:`ironic_images.inspection.StreamInspector`), fed the
        decompressed bytes.
    :param decompress: whether to decompress zstd, gzip and xz.
    :param max_decompressed_size: the most bytes decompression may
        produce, or None.
    :param sparse: whether all-zero blocks become holes.
    """

    def __init__(self, image_file, image_href, inspector=None,
                 decompress=True, max_decompressed_size=None, sparse=True):
        super().__init__()
        self._fd = image_file.fileno()
        self._href = image_href
        self._inspector = inspector
        self._decompress = decompress
        self._limit = max_decompressed_size
        self._sparse = sparse
        self._start()

    def _start(self):
        self._head = bytearray()
        self._decided = False
        self._decoder = None
        self.compression = None
        self._received = 0
        self._offset = 0
        self._inspecting = self._inspector is not None

    def writable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        """Bytes received so far (before decompression)."""
        return self._received

    def seek(self, offset, whence=io.SEEK_SET):
        """Start over; only ``seek(0)`` is supported.

        :raises: io.UnsupportedOperation for any other position.
        """
        if offset != 0 or whence != io.SEEK_SET:
            raise io.UnsupportedOperation('an image sink only rewinds to 0')
        self._start()
        if self._inspector is not None:
            self._inspector.reset()
        os.ftruncate(self._fd, 0)
        return 0

    def truncate(self, size=None):
        """Drop everything; only allowed at offset 0 (after ``seek(0)``).

        :raises: io.UnsupportedOperation otherwise.
        """
        if self._received or size not in (None, 0):
            raise io.UnsupportedOperation('an image sink only truncates to 0')
        os.ftruncate(self._fd, 0)
        return 0

    def write(self, data):
        """Take the next bytes of the image.

        :returns: the number of bytes taken (always all of them).
        :raises: ImageDownloadFailed (corrupt compressed data),
            ImageUnacceptable (past the decompression cap), OSError.
        """
        view = memoryview(data).cast('B')
        self._received += len(view)
        if not self._decided:
            self._head += view
            if len(self._head) < decompress.MAGIC_LENGTH:
                return len(view)
            self._decide()
            return len(view)
        self._take(view)
        return len(view)

    def _decide(self):
        """Pick the decompressor from the first bytes, then pass them on."""
        self._decided = True
        head, self._head = self._head, bytearray()
        if self._decompress:
            self.compression = decompress.detect_compression(head)
        if self.compression:
            self._decoder = decompress.new_decompressor(
                self.compression, self._emit, self._href, self._limit)
        self._take(memoryview(head))

    def _take(self, view):
        if self._decoder is not None:
            self._decoder.write(view)
        else:
            self._emit(view)

    def _emit(self, data):
        view = memoryview(data).cast('B')
        if self._inspecting:
            self._inspector.update(view)
            self._inspecting = not self._inspector.complete
        if self._sparse:
            self._write_sparse(view)
        else:
            self._pwrite(view, self._offset)
        self._offset += len(view)

    def _write_sparse(self, view):
        run_start = 0
        for start in range(0, len(view), SPARSE_BLOCK):
            block = view[start:start + SPARSE_BLOCK]
            if _is_zero_block(block):
                if start > run_start:
                    self._pwrite(view[run_start:start],
                                 self._offset + run_start)
                run_start = start + SPARSE_BLOCK
        if run_start < len(view):
            self._pwrite(view[run_start:], self._offset + run_start)

    def _pwrite(self, view, offset):
        while view:
            written = os.pwrite(self._fd, view, offset)
            view = view[written:]
            offset += written

    def finish(self):
        """End the image: flush, set the length (trailing holes).

        The file is not fsynced: the caller syncs what it keeps.

        :returns: a :class:`SinkResult`.
        :raises: ImageDownloadFailed for a truncated compressed stream;
            OSError from the file system.
        """
        if not self._decided:
            self._decide()
        if self._decoder is not None:
            self._decoder.finish()
        os.ftruncate(self._fd, self._offset)
        detected = None
        if self._inspector is not None:
            # The inspector may have stopped being fed early: tell it the
            # length, which is the virtual size of a raw image.
            self._inspector.finish(size=self._offset)
            detected = self._inspector.result()
        return SinkResult(self._received, self._offset, self.compression,
                          detected)


def _is_zero_block(block):
    return (len(block) == SPARSE_BLOCK
            and block[:_PREFIX].tobytes() == _ZERO_PREFIX
            and block.tobytes() == _ZEROS)
