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

"""Safe image format detection, fed from the transfer pipeline.

The format of an untrusted image is found by the format inspectors of
:mod:`oslo_utils.imageutils.format_inspector`, never by qemu-img, in one
pass over the bytes as they stream by: :class:`StreamInspector` is that
stage, :func:`inspect_file` runs it over a file, and both give a
:class:`DetectedImage` for the safety gate
(:func:`ironic_images.formats.gate.check_image`). Memory is bounded,
only what the inspectors need is read, and the verdict never depends on
how the stream is cut; how: the contributor guide's "Inspection, the
sink and streamed qcow2".
"""

import errno
import os

from oslo_log import log as logging
from oslo_utils.imageutils import format_inspector
from oslo_utils import units

from ironic_images._i18n import _
from ironic_images import exception
from ironic_images.formats import names as formats

LOG = logging.getLogger(__name__)

#: The first bytes, fed to the VMDK inspector in one piece: qemu-img reads
#: a descriptor file up to 1 MiB - 1 (``VMDKInspector.DESC_MAX_SIZE``).
HEAD_SIZE = units.Mi
#: The size of the blocks every other inspector is fed.
BLOCK_SIZE = 64 * units.Ki
#: How much :func:`inspect_file` reads at a time.
READ_SIZE = units.Mi
#: How much of a file's end :func:`inspect_file` reads when only the end
#: matters (a VMDK footer is 1536 bytes).
TAIL_SIZE = BLOCK_SIZE

# Inspectors that are fed the head in one piece (see the module doc).
_WHOLE_HEAD = frozenset(['vmdk'])
# Formats two inspectors may legitimately find together, and the one that
# counts: an ISO with a GPT in its system area boots as a disk and as a CD.
_ALLOWED_PAIRS = {frozenset(['iso', 'gpt']): 'iso'}


def _waits_for_end(inspector):
    """Tell whether an inspector only waits for the end of the stream."""
    # context_info names every region (public API, unlike the dict).
    waiting = [inspector.region(name) for name in inspector.context_info
               if not inspector.region(name).complete]
    return bool(waiting) and all(
        isinstance(r, format_inspector.EndCaptureRegion) for r in waiting)


def _format_match(inspector):
    """Return the inspector's format_match; a parse error is no match."""
    try:
        return bool(inspector.format_match)
    except Exception:
        # e.g. VMDKInspector has no vmdktype when its descriptor was not
        # ASCII; such content does not match the format.
        return False


class DetectedImage(object):
    """What the format inspectors found in an image.

    :ivar format: the format name (oslo's: raw, qcow2, vmdk, vhd, vhdx,
        vdi, qed, iso, gpt, luks), ``iso`` for an ISO that also carries a
        GPT, or None when more than one format matched otherwise (refused
        by the safety gate).
    :ivar virtual_size: the disk size in bytes, or None if unknown. For raw
        and gpt it is the length of the data (see
        :meth:`StreamInspector.finish`).
    :ivar inspector: the oslo ``FileInspector`` of ``format`` (None when
        ``format`` is None).
    :ivar matches: the sorted names of every format that matched
        (``('raw',)`` when nothing more specific did).
    :ivar inspectors: name -> inspector, for every match.
    :ivar errors: name -> message, for every matched inspector that failed
        to parse its structures.
    :ivar data_size: the length of the data, in bytes.
    """

    def __init__(self, format, inspector, inspectors, virtual_size,
                 data_size, errors):
        self.format = format
        self.inspector = inspector
        self.inspectors = inspectors
        self.matches = tuple(sorted(inspectors))
        self.virtual_size = virtual_size
        self.data_size = data_size
        self.errors = errors

    @property
    def vmdk_create_type(self):
        """The createType of a VMDK descriptor (lower case), else None."""
        vmdk = self.inspectors.get('vmdk')
        return getattr(vmdk, 'vmdktype', None) if vmdk else None

    def __repr__(self):
        return ('DetectedImage(format=%r, virtual_size=%r, matches=%r, '
                'errors=%r)' % (self.format, self.virtual_size,
                                self.matches, self.errors))


class StreamInspector(object):
    """Format detection fed chunk by chunk; a transfer-pipeline stage.

    Feed it every chunk with :meth:`update` (or stop once
    :attr:`complete`), call :meth:`finish` at the end of the stream, then
    read :meth:`result`. Memory stays bounded whatever the input: the
    first MiB, one block, and the few regions the inspectors keep.

    :param image_href: the href of the image, for messages.
    """

    def __init__(self, image_href=None):
        self.image_href = image_href
        self.reset()

    def reset(self):
        """Start over, e.g. when a transfer restarts from its first byte."""
        self._inspectors = {
            name: cls() for name, cls in
            format_inspector.ALL_FORMATS.items() if name != 'raw'}
        # Inspectors that still want data: not complete, not failed.
        self._hungry = list(self._inspectors)
        self._errors = {}
        self._head = bytearray()
        self._pending = bytearray()
        self._position = 0
        self._length = None
        self._complete = False
        self._finished = False
        self._end_only = None   # cached waits_for_end, reset by _eat

    @property
    def complete(self):
        """True once no more bytes can change the verdict.

        The caller may stop calling :meth:`update` then (and should give
        the stream's length to :meth:`finish`).
        """
        return self._complete

    @property
    def position(self):
        """How many bytes :meth:`update` was given."""
        return self._position

    @property
    def waits_for_end(self):
        """True when only the last bytes of the stream can still matter.

        Every inspector still fed only waits for a region at the end of the
        stream (oslo's ``EndCaptureRegion``: the footer of a VMDK whose
        grain directory is at its end). A caller that can seek may then
        :meth:`skip` to the last :data:`TAIL_SIZE` bytes.
        """
        if self._complete or self._head is not None or not self._hungry:
            return False
        if self._end_only is None:
            self._end_only = all(_waits_for_end(self._inspectors[name])
                                 for name in self._hungry)
        return self._end_only

    def skip(self, count):
        """Count bytes that the caller jumps over without feeding them.

        Only while :attr:`waits_for_end`; the caller must then feed at
        least the last :data:`TAIL_SIZE` bytes of the stream (or all that
        is left), which is all the waiting inspectors keep.

        :param count: how many bytes are jumped over.
        :raises: ImageUnacceptable when the inspectors need those bytes.
        """
        if not self.waits_for_end:
            raise exception.ImageUnacceptable(
                image_href=self.image_href,
                reason=_('the format inspectors need every byte here'))
        # What is pending comes before the gap; the tail replaces it.
        self._pending = bytearray()
        self._position += count

    def update(self, data):
        """Inspect the next chunk of the stream.

        Once :attr:`complete`, this only counts the bytes.

        :param data: bytes, bytearray or memoryview, of any length.
        :raises: ImageUnacceptable if called after :meth:`finish`.
        """
        if self._finished:
            raise exception.ImageUnacceptable(
                image_href=self.image_href,
                reason=_('data given to the format inspector after the end '
                         'of the stream'))
        view = memoryview(data).cast('B')
        self._position += len(view)
        if self._complete or not view:
            return
        if self._head is None:
            self._feed(view)
        elif not self._head and len(view) >= HEAD_SIZE:
            # The usual first chunk of a transfer: no need to copy it.
            self._head = None
            self._feed_head(view)
        else:
            self._head += view
            if len(self._head) >= HEAD_SIZE:
                head, self._head = self._head, None
                self._feed_head(memoryview(head))

    def finish(self, size=None):
        """Mark the end of the stream.

        :param size: the length of the whole stream, when the caller
            stopped feeding once :attr:`complete`; by default the bytes
            given to :meth:`update`. It is the virtual size of a raw or
            gpt image.
        """
        if self._finished:
            return
        if self._head is not None:
            head, self._head = self._head, None
            self._feed_head(memoryview(head))
        if self._pending and not self._complete:
            self._eat_all(bytes(self._pending))
        self._pending = bytearray()
        for inspector in self._inspectors.values():
            try:
                inspector.finish()
            except Exception:  # nosec: a broken inspector is no match
                pass
        self._length = self._position if size is None else size
        self._finished = True
        self._complete = True

    def _feed_head(self, view):
        # The inspectors copy what they keep (bytes concatenation), so
        # views of the caller's buffer are enough.
        head, rest = view[:HEAD_SIZE], view[HEAD_SIZE:]
        for name in list(self._hungry):
            if name in _WHOLE_HEAD:
                self._eat(name, head)
            else:
                for offset in range(0, len(head), BLOCK_SIZE):
                    if not self._eat(name, head[offset:offset + BLOCK_SIZE]):
                        break
        self._complete = not self._hungry
        if rest and not self._complete:
            self._feed(rest)

    def _feed(self, view):
        if self.waits_for_end:
            # Only the last bytes matter: keep them, feed them at finish.
            if len(view) >= TAIL_SIZE:
                self._pending = bytearray(view[-TAIL_SIZE:])
            else:
                self._pending += view
                del self._pending[:-TAIL_SIZE]
            return
        if self._pending:
            need = BLOCK_SIZE - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if len(self._pending) < BLOCK_SIZE:
                return
            block, self._pending = bytes(self._pending), bytearray()
            if self._eat_all(block):
                return
        whole = len(view) - len(view) % BLOCK_SIZE
        for offset in range(0, whole, BLOCK_SIZE):
            if self._eat_all(view[offset:offset + BLOCK_SIZE]):
                return
        self._pending += view[whole:]

    def _eat_all(self, block):
        """Feed one block to every hungry inspector; True when complete."""
        for name in list(self._hungry):
            self._eat(name, block)
        self._complete = not self._hungry
        return self._complete

    def _eat(self, name, chunk):
        """Feed one inspector; False once it wants no more data."""
        inspector = self._inspectors[name]
        self._end_only = None
        try:
            inspector.eat_chunk(chunk)
            if inspector.complete:
                # Let post_process() see the regions this chunk completed:
                # it may add the next one (VHDX metadata -> virtual size).
                inspector.eat_chunk(b'')
        except Exception as e:
            # oslo raises ImageFormatError, but hostile data also brings
            # struct.error, KeyError...: this inspector is done with.
            self._errors[name] = str(e) or type(e).__name__
            self._hungry.remove(name)
            return False
        if inspector.complete:
            self._hungry.remove(name)
            return False
        return True

    def result(self):
        """Return what was found.

        :returns: a :class:`DetectedImage`.
        :raises: ImageUnacceptable before :meth:`finish` (or before
            :attr:`complete`).
        """
        if not self._complete:
            raise exception.ImageUnacceptable(
                image_href=self.image_href,
                reason=_('the format inspection is not finished'))
        length = self._position if self._length is None else self._length
        matches = {name: inspector
                   for name, inspector in self._inspectors.items()
                   if _format_match(inspector)}
        if not matches:
            # Nothing specific: raw, as oslo's InspectWrapper says.
            matches = {'raw': format_inspector.RawFileInspector()}
        if len(matches) == 1:
            name, inspector = next(iter(matches.items()))
        else:
            name = _ALLOWED_PAIRS.get(frozenset(matches))
            inspector = matches.get(name)
        errors = {n: e for n, e in self._errors.items() if n in matches}
        return DetectedImage(name, inspector, matches,
                             _virtual_size(name, inspector, length), length,
                             errors)


def _virtual_size(name, inspector, length):
    if name is None:
        return None
    if formats.size_is_length(name):
        return length
    if name == 'luks':
        # oslo counts the bytes it was fed; the payload follows the header.
        try:
            return max(0, length - inspector.header_items[
                'payload_offset'] * 512)
        except Exception:
            return None
    try:
        return inspector.virtual_size or None
    except Exception:
        # e.g. VMDKInspector reads a sparse header that a descriptor file
        # does not have (KeyError): the size is unknown.
        return None


def inspect_file(path, image_href=None):
    """Detect the format of a file, reading no more than needed.

    Reading stops as soon as the inspectors are :attr:`complete
    <StreamInspector.complete>`: after the first MiB for most images. When
    the inspectors only wait for the end of the file (a VMDK footer), the
    file is read from its last :data:`TAIL_SIZE` bytes. An image whose
    structures point past what was read is read to its end.

    :param path: the file.
    :param image_href: the href of the image, for messages (default:
        ``path``).
    :returns: a :class:`DetectedImage`.
    :raises: ImageNotFound if the file does not exist; ImageUnacceptable
        if it cannot be read.
    """
    image_href = image_href or path
    inspector = StreamInspector(image_href)
    try:
        with open(path, 'rb') as f:
            # Not st_size: a block device has none, but it can seek.
            size = f.seek(0, os.SEEK_END)
            f.seek(0)
            buf = bytearray(READ_SIZE)
            while not inspector.complete:
                if inspector.waits_for_end and size - TAIL_SIZE > f.tell():
                    inspector.skip(size - TAIL_SIZE - f.tell())
                    f.seek(size - TAIL_SIZE)
                count = f.readinto(buf)
                if not count:
                    break
                inspector.update(memoryview(buf)[:count])
    except OSError as e:
        cls = (exception.ImageNotFound if e.errno == errno.ENOENT
               else exception.ImageUnacceptable)
        raise cls(image_href=image_href,
                  reason=_('cannot read %(path)s: %(error)s') % {
                      'path': path, 'error': e.strerror or e})
    inspector.finish(size=size)
    return inspector.result()
