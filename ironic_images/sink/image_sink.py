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

An :class:`ImageSink` is a writable binary file object, so any driver
can ``download()`` into it. In one pass, in the writer's thread, it
decompresses zstd, gzip and xz (:mod:`ironic_images.sink.decompress`,
output capped), reduces a tar archive to the one disk image inside it
(:mod:`ironic_images.sink.untar`), feeds the format inspector, and writes
the image with all-zero blocks left as holes, or a qcow2 as a raw disk
(:mod:`ironic_images.sink.qcow2_stream`), into an
:class:`~ironic_images.sink.outputs.Output`: a regular file (holes left as
holes), a block device (holes zeroed) or a stream (written in order).
With ``choose_output`` it holds the first bytes until the inspector has
decided, and asks then where to write them. ``seek(0)`` starts it all
over; :meth:`ImageSink.finish` returns a :class:`SinkResult`.
"""

import io

from oslo_log import log as logging

from ironic_images.common import masking
from ironic_images.formats import names as formats
from ironic_images.sink import decompress
from ironic_images.sink import outputs
from ironic_images.sink import qcow2_stream
from ironic_images.sink import untar

LOG = logging.getLogger(__name__)

# Zero blocks of this size become holes; 64 KiB keeps the per-block Python
# work small next to the copy and compare (about 10 GB/s here).
SPARSE_BLOCK = 64 * 1024
_ZEROS = bytes(SPARSE_BLOCK)
# Most data blocks start with a non-zero byte: looking at a few bytes
# first spares them the copy and compare of the whole block.
_PREFIX = 64
_ZERO_PREFIX = bytes(_PREFIX)
# With write-behind, the written pages are handed to the disk (and dropped
# from the page cache once clean) every this many bytes.
WRITE_BEHIND_BYTES = 64 * 1024 * 1024
#: With ``choose_output``: the most bytes held while the inspector has not
#: decided (it decides within the first MiB for every format it does not
#: have to read to the end).
HOLD_BYTES = 4 * 1024 * 1024


class SinkResult:
    """What an :class:`ImageSink` received and wrote.

    :ivar received: bytes written to the sink (compressed, if it was).
    :ivar size: bytes of the image written to the file.
    :ivar compression: ``'zstd'``, ``'gzip'``, ``'xz'`` or None.
    :ivar detected: the inspector's result, or None without an inspector.
    :ivar converted: ``'raw'`` when a qcow2 was written as a raw disk,
        else None (the file holds the image as it came).
    :ivar member: the path of the image in the tar archive it came in,
        or None when it did not come in one.
    """

    def __init__(self, received, size, compression, detected,
                 converted=None, member=None):
        self.received = received
        self.size = size
        self.compression = compression
        self.detected = detected
        self.converted = converted
        self.member = member


class ImageSink(io.RawIOBase):
    """A file object that turns downloaded bytes into an image file.

    :param image_file: a binary file opened for writing at offset 0, with
        a file descriptor (the sink writes with ``pwrite``), or an
        :class:`~ironic_images.sink.outputs.Output`; None with
        ``choose_output``.
    :param image_href: the image, for error messages.
    :param inspector: None, or an object with ``update(data)``,
        ``complete``, ``reset()``, ``finish(size)`` and ``result()`` (a
        :class:`ironic_images.formats.inspection.StreamInspector`), fed the
        decompressed bytes.
    :param decompress: whether to decompress zstd, gzip and xz.
    :param max_decompressed_size: the most bytes decompression may
        produce, or None.
    :param sparse: whether all-zero blocks become holes.
    :param to_raw: write a qcow2 whose layout allows it as a raw disk
        while it arrives (:mod:`ironic_images.sink.qcow2_stream`); other
        images are written as they come.
    :param spill_dir: with ``to_raw``, where qcow2 clusters that arrive
        before they can be placed wait (default: the temp directory).
    :param check_space: with ``to_raw``, called with the virtual size
        before a qcow2 is written as a raw disk; raises to refuse it.
    :param write_behind: True when the file will be kept (fsynced): push
        what is written to the disk during the transfer and drop it from
        the page cache, so the final fsync has little left to do and a big
        image does not fill the page cache. Not for a file read back soon
        (by a conversion). ``'raw'``: only once the file is known to be
        kept as a raw disk: a qcow2 written as raw, or an image the
        inspector finds raw, gpt or iso.
    :param progress: None, or ``progress(done, total)`` told of the bytes
        received, for a driver that reports none itself.
    :param expected_size: the ``total`` given to ``progress``, or None.
    :param unpack: whether a tar archive (after decompression) is
        reduced to the disk image inside it; when False it is written as
        it comes.
    :param archive_name: what names a tar archive in messages (the
        digest of the layer it is), or None.
    :param choose_output: ``choose_output(detected, head, compression)``,
        called once the inspector has decided (or :data:`HOLD_BYTES` are
        held, or the image ended) with its :class:`DetectedImage` (None
        when it has not decided), the bytes held (decompressed) and the
        compression found; returns ``(output, to_raw)``, the
        :class:`~ironic_images.sink.outputs.Output` to write to and
        whether a qcow2 is written as raw (``to_raw`` is then ignored).
        It may raise to refuse the image: nothing was written.
    """

    def __init__(self, image_file, image_href, inspector=None,
                 decompress=True, max_decompressed_size=None, sparse=True,
                 to_raw=False, spill_dir=None, check_space=None,
                 write_behind=False, progress=None, expected_size=None,
                 unpack=True, archive_name=None, choose_output=None):
        super().__init__()
        if image_file is None or isinstance(image_file, outputs.Output):
            self._out = image_file
        else:
            self._out = outputs.FileOutput(image_file.fileno(),
                                           getattr(image_file, 'name', None))
        self._choose_output = choose_output
        self._href = image_href
        self._inspector = inspector
        self._decompress = decompress
        self._limit = max_decompressed_size
        self._sparse = sparse
        self._to_raw = to_raw
        self._spill_dir = spill_dir
        self._check_space = check_space
        self._write_behind_when = write_behind
        self._progress = progress
        self._expected_size = expected_size
        self._unpack = unpack
        self._archive_name = archive_name
        self._qcow2 = None
        self._start()

    def _start(self):
        self._head = bytearray()
        self._decided = False
        self._decoder = None
        self.compression = None
        self._received = 0
        self._offset = 0
        self._inspecting = self._inspector is not None
        if self._qcow2 is not None:
            self._qcow2.close()
            self._qcow2 = None
        self._probe_head = bytearray()
        self._held = bytearray()
        if self._out is None:
            self._writer = self._hold
        else:
            self._writer = self._probe if self._to_raw else self._write_plain
        self._write_behind = self._write_behind_when is True
        self._unsynced = 0
        # What decompression (or the raw input) feeds: the tar stage
        # before the inspector and the writer, unless it is off.
        self._untar = (untar.TarStage(self._emit, self._href,
                                      self._archive_name)
                       if self._unpack else None)
        self._front = self._untar.write if self._untar else self._emit

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
        if self._out is not None:
            self._out.reset()
        return 0

    def close(self):
        """Close the sink and drop a qcow2 decoder's spill file.

        The image file itself belongs to the caller and stays open.
        """
        if self._qcow2 is not None:
            self._qcow2.close()
            self._qcow2 = None
        super().close()

    def truncate(self, size=None):
        """Drop everything; only allowed at offset 0 (after ``seek(0)``).

        :raises: io.UnsupportedOperation otherwise.
        """
        if self._received or size not in (None, 0):
            raise io.UnsupportedOperation('an image sink only truncates to 0')
        if self._out is not None:
            self._out.reset()
        return 0

    def write(self, data):
        """Take the next bytes of the image.

        :returns: the number of bytes taken (always all of them).
        :raises: ImageDownloadFailed (corrupt compressed data),
            ImageUnacceptable (past the decompression cap, a corrupt
            qcow2 written as raw), what ``check_space`` raises, OSError.
        """
        view = memoryview(data).cast('B')
        self._received += len(view)
        if self._progress is not None:
            self._progress(self._received, self._expected_size)
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
                self.compression, self._front, self._href, self._limit)
        self._take(memoryview(head))

    def _take(self, view):
        if self._decoder is not None:
            self._decoder.write(view)
        else:
            self._front(view)

    def _emit(self, data):
        view = memoryview(data).cast('B')
        if self._inspecting:
            self._inspector.update(view)
            self._inspecting = not self._inspector.complete
            if not self._inspecting and self._write_behind_when == 'raw':
                self._write_behind |= (
                    self._inspector.result().format in formats.DISK_FORMATS)
        self._writer(view, self._offset)
        self._offset += len(view)

    def _hold(self, view, offset):
        """Hold the first bytes until ``choose_output`` can be asked."""
        self._held += view
        if (len(self._held) >= HOLD_BYTES
                or self._inspector is None or not self._inspecting):
            self._release()

    def _release(self):
        """Ask ``choose_output`` where to write, and write what is held."""
        detected = None
        if self._inspector is not None and self._inspector.complete:
            detected = self._inspector.result()
        held, self._held = self._held, bytearray()
        self._out, self._to_raw = self._choose_output(detected, held,
                                                      self.compression)
        self._writer = self._probe if self._to_raw else self._write_plain
        if self._write_behind_when == 'raw' and detected is not None:
            self._write_behind |= detected.format in formats.DISK_FORMATS
        if held:
            self._writer(memoryview(held), 0)

    def _probe(self, view, offset):
        """Hold the first bytes until a qcow2 header can be read."""
        self._probe_head += view
        if len(self._probe_head) >= qcow2_stream.HEADER_BYTES:
            self._choose_writer()

    def _choose_writer(self):
        head, self._probe_head = self._probe_head, bytearray()
        header, why = qcow2_stream.streamable_header(head)
        if header is None:
            if head.startswith(qcow2_stream.MAGIC):
                LOG.debug('%(href)s: qcow2 converted after the download '
                          '(%(why)s)', {'href': masking.mask_href(
                              self._href), 'why': why})
            self._writer = self._write_plain
        else:
            if self._check_space is not None:
                self._check_space(header.virtual_size)
            self._qcow2 = qcow2_stream.Qcow2ToRaw(
                header, self._write_sparse, self._spill_dir, self._href)
            self._writer = self._write_qcow2
            self._write_behind |= self._write_behind_when == 'raw'
        self._writer(memoryview(head), 0)

    def _write_qcow2(self, view, offset):
        self._qcow2.write(view)

    def _write_plain(self, view, offset):
        if self._sparse:
            self._write_sparse(view, offset)
        else:
            self._pwrite(view, offset)

    def _write_sparse(self, view, offset):
        run_start = 0
        for start in range(0, len(view), SPARSE_BLOCK):
            block = view[start:start + SPARSE_BLOCK]
            if _is_zero_block(block):
                if start > run_start:
                    self._pwrite(view[run_start:start], offset + run_start)
                run_start = start + SPARSE_BLOCK
        if run_start < len(view):
            self._pwrite(view[run_start:], offset + run_start)

    def _pwrite(self, view, offset):
        self._unsynced += len(view)
        self._out.pwrite(view, offset)
        if self._write_behind and self._unsynced >= WRITE_BEHIND_BYTES:
            self._unsynced = 0
            self._out.write_behind()

    def finish(self):
        """End the image: flush, set the length (trailing holes).

        The file is not fsynced: the caller syncs what it keeps.

        :returns: a :class:`SinkResult`.
        :raises: ImageDownloadFailed for a truncated compressed stream;
            ImageUnacceptable for a qcow2 that cannot be written as raw;
            OSError from the file system.
        """
        if not self._decided:
            self._decide()
        if self._decoder is not None:
            self._decoder.finish()
        if self._untar is not None:
            self._untar.finish()
        detected = None
        if self._inspector is not None:
            # The inspector may have stopped being fed early: tell it the
            # length, which is the virtual size of a raw image.
            self._inspector.finish(size=self._offset)
            detected = self._inspector.result()
        if self._writer == self._hold:
            self._release()
        if self._writer == self._probe:
            self._choose_writer()
        length = self._offset
        if self._qcow2 is not None:
            self._qcow2.finish()
            length = self._qcow2.virtual_size
        self._out.finish(length)
        return SinkResult(self._received, length, self.compression,
                          detected,
                          converted='raw' if self._qcow2 else None,
                          member=self._untar.member if self._untar else None)


def _is_zero_block(block):
    return (len(block) == SPARSE_BLOCK
            and block[:_PREFIX].tobytes() == _ZERO_PREFIX
            and block.tobytes() == _ZEROS)
