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

"""Compressed clusters made by hand, and what qemu reads of one.

Streams whose bytes can be another structure's and still inflate (stored
deflate blocks, raw zstd blocks), a deflate stream whose last distance
code can be cut off into the next host cluster, and
:func:`inflate_as_qemu`, which reads a compressed L2 entry of a built
file as qemu does (the file's own bytes, zeros past its end).
"""

import random
import struct
import zlib

import zstandard

from ironic_images.tests.unit.sink import qcow2_builder as qb


def inflate_as_qemu(image, word, cluster_bits, method):
    """The cluster qemu reads for compressed L2 entry ``word`` of a file.

    The bytes the entry names, from the file itself (zeros past its end),
    inflated as qemu does: zlib to the first cluster of output, zstd one
    frame. None when that is not exactly one cluster.
    """
    cluster_size = 1 << cluster_bits
    shift = 62 - (cluster_bits - 8)
    host = word & ((1 << shift) - 1)
    sectors = ((word >> shift) & ((1 << (cluster_bits - 8)) - 1)) + 1
    data = image[host:host + sectors * qb.SECTOR - host % qb.SECTOR]
    data += bytes(sectors * qb.SECTOR - host % qb.SECTOR - len(data))
    try:
        if method == 'zstd':
            out = zstandard.ZstdDecompressor().stream_reader(
                data, read_across_frames=False).read(cluster_size + 1)
        else:
            out = zlib.decompressobj(-15).decompress(data, cluster_size)
    except (zlib.error, zstandard.ZstdError):
        return None
    return out if len(out) == cluster_size else None


def stored_deflate(content):
    """A raw deflate stream that holds ``content`` as stored blocks.

    Every byte of ``content`` is in the stream as it is, the last 65535
    of them in one block after every block header: the stream's tail can
    be another structure's bytes and still inflate.
    """
    step = 65535
    sizes = [len(content) % step] if len(content) % step else []
    sizes += [step] * (len(content) // step)
    blocks, start = [], 0
    for number, size in enumerate(sizes):
        last = number == len(sizes) - 1
        blocks.append(struct.pack('<BHH', int(last), size, size ^ 0xffff)
                      + content[start:start + size])
        start += size
    return b''.join(blocks)


def raw_zstd(content):
    """A zstd frame that holds ``content`` as raw blocks (no checksum)."""
    step = 128 * 1024
    # Single segment, a 4-byte content size.
    frame = [b'\x28\xb5\x2f\xfd\xa0', struct.pack('<I', len(content))]
    for start in range(0, len(content), step):
        chunk = content[start:start + step]
        last = int(start + step >= len(content))
        frame.append((len(chunk) << 3 | last).to_bytes(3, 'little') + chunk)
    return b''.join(frame)


# Distance codes of deflate (RFC 1951, 3.2.5): first distance, extra bits.
_DISTANCES = [(1, 0), (2, 0), (3, 0), (4, 0), (5, 1), (7, 1), (9, 2),
              (13, 2), (17, 3), (25, 3), (33, 4), (49, 4), (65, 5), (97, 5),
              (129, 6), (193, 6), (257, 7), (385, 7), (513, 8), (769, 8),
              (1025, 9), (1537, 9), (2049, 10), (3073, 10), (4097, 11),
              (6145, 11), (8193, 12), (12289, 12), (16385, 13), (24577, 13)]


class _Bits:
    """Bits of a deflate stream, packed from the least significant."""

    def __init__(self):
        self.value = 0
        self.count = 0

    def put(self, value, count):
        self.value |= value << self.count
        self.count += count

    def code(self, code, length):
        """A Huffman code, which deflate packs most significant bit first."""
        self.put(int(format(code, '0%db' % length)[::-1], 2), length)

    def literal(self, byte):
        if byte < 144:
            self.code(0x30 + byte, 8)
        else:
            self.code(0x190 + byte - 144, 9)

    def distance(self, distance):
        code = max(n for n, (first, _) in enumerate(_DISTANCES)
                   if first <= distance)
        first, extra = _DISTANCES[code]
        self.code(code, 5)
        self.put(distance - first, extra)

    def bytes(self):
        return self.value.to_bytes(-(-self.count // 8), 'little')


def deflate_far_match(cluster_size, rng=random):
    """A deflate stream of one cluster whose last distance code is apart.

    Fixed Huffman codes: about 4 KiB of random literals, then matches of
    258 bytes that copy them from as far back, the last one whole. The
    stream is cut where the last match's distance code starts (on a byte
    boundary): read with its tail, it gives ``content``; with zeros
    instead, that match copies from 1 byte back, and the cluster is still
    whole but different.

    :param rng: where the literals come from (a :class:`random.Random`).
    :returns: ``(head, tail, content)``.
    """
    matches = (cluster_size - 4096) // 258
    distance = cluster_size - 258 * matches
    head_bits = (3 + 8 * distance + (matches - 1) * (13 + _distance_extra(
        distance)) + 8)
    # Literals from 144 up take 9 bits: as many as align the cut.
    wide = -head_bits % 8
    prefix = bytes(rng.randrange(144) for _ in range(distance - wide))
    prefix += bytes(rng.randrange(144, 256) for _ in range(wide))
    head = _Bits()
    head.put(1, 1)  # the last block
    head.put(1, 2)  # fixed Huffman codes
    for byte in prefix:
        head.literal(byte)
    for number in range(matches):
        head.code(0xc0 + 285 - 280, 8)  # length 258
        if number < matches - 1:
            head.distance(distance)
    tail = _Bits()
    tail.distance(distance)
    tail.code(0, 7)  # end of block
    assert head.count % 8 == 0, head.count
    content = (prefix * -(-cluster_size // distance))[:cluster_size]
    return head.bytes(), tail.bytes(), content


def _distance_extra(distance):
    return max(extra for first, extra in _DISTANCES if first <= distance)
