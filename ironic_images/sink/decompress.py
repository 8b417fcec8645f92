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

"""In-stream decompression of zstd, gzip and xz images, with bounded output.

Compressed images are recognised by their magic bytes, never by a file
name. Every decompressor here is push-style (``write(data)`` as bytes
arrive, ``finish()`` at the end) and hands its output to ``emit`` in pieces
of at most :data:`OUTPUT_PIECE` bytes, so memory stays bounded whatever the
compression ratio, and the total output is capped so a decompression bomb
stops with an error instead of filling the disk.
"""

import lzma
import zlib

import zstandard

from ironic_images._i18n import _
from ironic_images import exception

# The longest magic number below: what must be seen to decide.
MAGIC_LENGTH = 6
OUTPUT_PIECE = 1024 * 1024

_ZSTD_MAGIC = b'\x28\xb5\x2f\xfd'
_GZIP_MAGIC = b'\x1f\x8b'
_XZ_MAGIC = b'\xfd7zXZ\x00'


def detect_compression(head):
    """Name the compression of a stream from its first bytes.

    :param head: the first bytes (at least :data:`MAGIC_LENGTH` unless the
        stream is shorter).
    :returns: ``'zstd'``, ``'gzip'``, ``'xz'`` or None.
    """
    head = bytes(head[:MAGIC_LENGTH])
    if head.startswith(_ZSTD_MAGIC):
        return 'zstd'
    if head.startswith(_GZIP_MAGIC):
        return 'gzip'
    if head.startswith(_XZ_MAGIC):
        return 'xz'
    return None


class _Capped:
    """Counts output and refuses to pass the cap."""

    def __init__(self, emit, limit, image_href):
        self._emit = emit
        self._limit = limit
        self._href = image_href
        self.total = 0

    def write(self, data):
        self.total += len(data)
        if self._limit is not None and self.total > self._limit:
            raise exception.ImageUnacceptable(
                image_href=self._href,
                reason=_('it decompresses to more than the %d MiB allowed '
                         '([download]max_decompressed_size)')
                % (self._limit // (1024 * 1024)))
        self._emit(data)
        return len(data)


def _truncated(name, image_href):
    return exception.ImageDownloadFailed(
        image_href=image_href,
        reason=_('the %s stream ends in the middle of its data') % name)


def _corrupt(name, error, image_href):
    return exception.ImageDownloadFailed(
        image_href=image_href,
        reason=_('the %(name)s data is corrupt: %(error)s')
        % {'name': name, 'error': error})


class _ZlibStyle:
    """gzip and xz: decoders with ``decompress(data, max_length)``."""

    name = None

    def __init__(self, output, image_href):
        self._output = output
        self._href = image_href
        self._decoder = self._new_decoder()
        # Past the end of a gzip member or an xz stream.
        self._between = False

    def write(self, data):
        try:
            self._decode(bytes(data))
        except (zlib.error, lzma.LZMAError, EOFError) as error:
            raise _corrupt(self.name, error, self._href)

    def _decode(self, data):
        while True:
            if self._between:
                # Concatenated members (gzip) or streams (xz) are one
                # image; zero bytes after one are padding (xz's Stream
                # Padding, a block device's), which xz -d and gzip -d skip.
                data = data.lstrip(b'\0')
                if not data:
                    return
                self._decoder = self._new_decoder()
                self._between = False
            out = self._decoder.decompress(data, OUTPUT_PIECE)
            data = self._left_over()
            if out:
                self._output.write(out)
            if self._decoder.eof:
                data = self._decoder.unused_data + data
                self._between = True
            elif self._wants_input(data, out):
                return

    def finish(self):
        """Drain what the decoder holds; check the stream ended cleanly.

        :raises: ImageDownloadFailed for a truncated or corrupt stream.
        """
        self.write(b'')
        if not self._between:
            raise _truncated(self.name, self._href)


class _Gzip(_ZlibStyle):
    name = 'gzip'

    def _new_decoder(self):
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)

    def _left_over(self):
        # zlib hands back the input it had no room to decode.
        return self._decoder.unconsumed_tail

    def _wants_input(self, left_over, out):
        return not left_over and len(out) < OUTPUT_PIECE


class _Xz(_ZlibStyle):
    name = 'xz'

    def _new_decoder(self):
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)

    def _left_over(self):
        # lzma keeps unused input inside the decoder.
        return b''

    def _wants_input(self, left_over, out):
        return self._decoder.needs_input


class _Zstd:
    """zstd through python-zstandard's writer, which bounds its output.

    The writer cannot say whether the input ended at the end of a frame
    (only the unbounded ``decompressobj`` can), so :class:`ZstdFrames`
    follows the frame structure beside it to catch a truncated stream.
    """

    name = 'zstd'

    def __init__(self, output, image_href):
        self._href = image_href
        self._writer = zstandard.ZstdDecompressor().stream_writer(
            output, write_size=OUTPUT_PIECE, closefd=False)
        self._frames = ZstdFrames()

    def write(self, data):
        try:
            self._frames.update(data)
            self._writer.write(data)
        except (zstandard.ZstdError, ValueError) as error:
            raise _corrupt(self.name, error, self._href)

    def finish(self):
        """Check the stream ended at the end of a frame."""
        if not self._frames.at_boundary:
            raise _truncated(self.name, self._href)


class ZstdFrames:
    """Follows zstd frame boundaries (RFC 8878) without decompressing.

    Only headers are parsed: block sizes are skipped over, so the cost is a
    few operations per 128 KiB block.
    """

    _SKIPPABLE = range(0x184D2A50, 0x184D2A60)
    _MAGIC = 0xFD2FB528

    def __init__(self):
        self._buffer = bytearray()
        self._skip = 0
        self._state = self._frame_start
        self._checksum = False

    @property
    def at_boundary(self):
        """True when everything seen so far is whole frames."""
        return (self._state == self._frame_start and not self._skip
                and not self._buffer)

    def update(self, data):
        """Follow the next bytes of the stream.

        :raises: ValueError on a byte sequence that is not zstd.
        """
        data = memoryview(data).cast('B')
        while data:
            if self._skip:
                step = min(self._skip, len(data))
                self._skip -= step
                data = data[step:]
                continue
            need = self._state(None)
            take = min(need - len(self._buffer), len(data))
            self._buffer += data[:take]
            data = data[take:]
            if len(self._buffer) == need:
                header = bytes(self._buffer)
                self._buffer.clear()
                self._state(header)

    def _frame_start(self, header):
        if header is None:
            return 5
        magic = int.from_bytes(header[:4], 'little')
        if magic in self._SKIPPABLE:
            self._state = self._skippable_size
            self._first = header[4:]
            return
        if magic != self._MAGIC:
            raise ValueError('not a zstd frame')
        descriptor = header[4]
        single_segment = descriptor & 0x20
        fcs_flag = descriptor >> 6
        fcs_size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
        dict_size = (0, 1, 2, 4)[descriptor & 0x03]
        self._checksum = bool(descriptor & 0x04)
        self._skip = (0 if single_segment else 1) + dict_size + fcs_size
        self._state = self._block_header

    def _skippable_size(self, header):
        if header is None:
            return 3
        self._skip = int.from_bytes(self._first + header, 'little')
        self._state = self._frame_start

    def _block_header(self, header):
        if header is None:
            return 3
        value = int.from_bytes(header, 'little')
        last, block_type, size = value & 1, (value >> 1) & 3, value >> 3
        if block_type == 3:
            raise ValueError('reserved zstd block type')
        self._skip = 1 if block_type == 1 else size
        if last:
            self._skip += 4 if self._checksum else 0
            self._state = self._frame_start


_DECODERS = {'zstd': _Zstd, 'gzip': _Gzip, 'xz': _Xz}


def new_decompressor(name, emit, image_href, limit=None):
    """Make a push-style decompressor.

    :param name: ``'zstd'``, ``'gzip'`` or ``'xz'``.
    :param emit: called with each piece of output (at most
        :data:`OUTPUT_PIECE` bytes).
    :param image_href: the image, for error messages.
    :param limit: the most output bytes accepted, or None.
    :returns: an object with ``write(data)`` and ``finish()``.
    :raises: ImageDownloadFailed (corrupt or truncated data) and
        ImageUnacceptable (output past ``limit``) from its methods.
    """
    return _DECODERS[name](_Capped(emit, limit, image_href), image_href)
