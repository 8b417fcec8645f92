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

"""The one disk image inside a tar archive, unpacked in the stream.

Container layers are tar archives: a KubeVirt containerDisk holds
``disk/<name>``, an image built ``FROM scratch`` holds the one file copied
in, ``oras push`` of a directory holds the directory. :class:`TarStage`
sits after decompression: it passes a stream that is not a tar archive on
untouched, and of one that is (``ustar`` magic and a valid header
checksum, whatever the media type said) it passes on only the data of
the disk: the one regular file in ``disk/``, or else the one regular file
of the archive. Links, devices, fifos, sparse members, absolute names and
``..`` are refused, and so are several disks or none: a tar archive never
reaches a disk. Memory stays bounded: one header block and at most
:data:`MAX_EXTENDED_HEADER` bytes of pax or GNU long-name data.
"""

import posixpath

from oslo_utils import units

from ironic_images._i18n import _
from ironic_images import exception

BLOCK = 512
#: The bytes of a stream needed to tell a tar archive.
HEAD_BYTES = BLOCK
#: The largest pax extended header or GNU long name accepted.
MAX_EXTENDED_HEADER = units.Mi
#: KubeVirt's containerDisk keeps its disk in this directory.
DISK_DIRECTORY = 'disk'

_ZERO_BLOCK = bytes(BLOCK)
_REGULAR = (b'0', b'\0', b'7')
_DIRECTORY = b'5'
_PAX_NEXT = b'x'
_PAX_GLOBAL = b'g'
_GNU_LONG_NAME = b'L'
_GNU_LONG_LINK = b'K'
_TYPE_NAMES = {b'1': _('a hard link'), b'2': _('a symbolic link'),
               b'3': _('a character device'), b'4': _('a block device'),
               b'6': _('a fifo'), b'S': _('a sparse file'),
               b'M': _('a multi-volume continuation'),
               b'V': _('a volume label')}


def is_tar_header(block):
    """Tell whether a block is a ustar, pax or GNU tar header.

    :param block: the first :data:`BLOCK` bytes of a stream (fewer: no).
    :returns: True when it has the ``ustar`` magic at offset 257 and a
        valid header checksum.
    """
    block = bytes(block[:BLOCK])
    return (len(block) == BLOCK and block[257:262] == b'ustar'
            and _checksum_ok(block))


def _checksum_ok(block):
    try:
        recorded = int(block[148:156].strip(b' \0') or b'-1', 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    # Some old writers summed signed bytes.
    signed = unsigned - 256 * sum(1 for b in block[:148] + block[156:]
                                  if b > 127)
    return recorded in (unsigned, signed)


def _octal(field):
    """A numeric header field: octal text, or GNU's base-256."""
    if field[:1] == b'\x80':
        return int.from_bytes(field[1:], 'big')
    if field[:1] == b'\xff':
        raise ValueError('negative number')
    text = field.split(b'\0', 1)[0].strip(b' ')
    return int(text, 8) if text else 0


def _text(field):
    return field.split(b'\0', 1)[0].decode('utf-8', 'surrogateescape')


def _pax_records(data):
    """The ``key=value`` records of a pax extended header."""
    records = {}
    data = bytes(data)
    while data:
        length_text, space, _rest = data.partition(b' ')
        length = int(length_text)
        if not space or length <= len(length_text) + 1 or length > len(data):
            raise ValueError('malformed pax record')
        record, data = data[len(length_text) + 1:length], data[length:]
        key, equals, value = record.rstrip(b'\n').partition(b'=')
        if not equals:
            raise ValueError('malformed pax record')
        records[key.decode('utf-8', 'surrogateescape')] = value.decode(
            'utf-8', 'surrogateescape')
    return records


class TarStage:
    """Pass a stream on, or the disk inside it when it is a tar archive.

    :param emit: called with each piece of the output.
    :param image_href: the image, for messages.
    :param name: what names the archive in messages (its digest), or
        None.

    After :meth:`finish`, :attr:`member` is the path of the disk in the
    archive, or None when the stream was not a tar archive.
    """

    def __init__(self, emit, image_href, name=None):
        self._emit = emit
        self._href = image_href
        self._name = (_('the tar archive %s') % name if name
                      else _('the tar archive'))
        self._head = bytearray()
        self._decided = False
        self.is_archive = False
        self.member = None
        # Parser state: the bytes a header (or extended data) still
        # needs, or the member data (emitted or skipped) still to come.
        self._buffer = bytearray()
        self._want = BLOCK
        self._state = self._header
        self._data_left = 0
        self._padding = 0
        self._emitting = False
        self._pending = {}
        self._extended_kind = None
        self._plain = []
        self._from_disk_dir = False
        self._offset = 0
        self._ended = 0

    def write(self, data):
        """Take the next decoded bytes.

        :raises: ImageUnacceptable for an archive that is unsafe or does
            not hold exactly one disk.
        """
        view = memoryview(data).cast('B')
        if not self._decided:
            self._head += view
            if len(self._head) < HEAD_BYTES:
                return
            self._decide()
            return
        if self.is_archive:
            self._parse(view)
        else:
            self._emit(view)

    def _decide(self):
        self._decided = True
        head, self._head = self._head, bytearray()
        self.is_archive = is_tar_header(head)
        if self.is_archive:
            self._parse(memoryview(head))
        elif head:
            self._emit(memoryview(head))

    def finish(self):
        """End the stream; check the archive held exactly one disk.

        :raises: ImageUnacceptable (no disk, several), ImageDownloadFailed
            (an archive cut in the middle of a member).
        """
        if not self._decided:
            self._decide()
        if not self.is_archive:
            return
        if self._state not in (self._header, self._trailer) or self._buffer:
            raise exception.ImageDownloadFailed(
                image_href=self._href,
                reason=_('%s ends in the middle of a member') % self._name)
        if self._pending:
            raise self._refuse(_('it ends after an extended header'))
        if self.member is None:
            raise self._refuse(_('it holds no regular file with data: no '
                                 'disk image'))
        if len(self._plain) > 1 and not self._from_disk_dir:
            raise self._refuse(
                _('it holds several files (%s): put the disk image in '
                  'disk/, or push it alone') % ', '.join(self._plain[:5]))

    def _refuse(self, reason):
        return exception.ImageUnacceptable(
            image_href=self._href,
            reason=_('%(name)s is not one disk image: %(reason)s') % {
                'name': self._name, 'reason': reason})

    # The parser: each state takes a view and returns what it left.

    def _parse(self, view):
        while view:
            view = self._state(view)

    def _fill(self, view):
        """Gather ``self._want`` bytes; None until they are all there."""
        take = self._want - len(self._buffer)
        self._buffer += view[:take]
        if len(self._buffer) < self._want:
            return None, view[take:]
        whole, self._buffer = bytes(self._buffer), bytearray()
        return whole, view[take:]

    def _header(self, view):
        block, rest = self._fill(view)
        if block is not None:
            self._offset += BLOCK
            self._on_header(block)
        return rest

    def _data(self, view):
        step = min(self._data_left, len(view))
        if self._emitting and step:
            self._emit(view[:step])
        self._data_left -= step
        self._offset += step
        if not self._data_left:
            self._state = self._skip_padding
        return view[step:]

    def _skip_padding(self, view):
        step = min(self._padding, len(view))
        self._padding -= step
        self._offset += step
        if not self._padding:
            self._state = self._header
        return view[step:]

    def _extended(self, view):
        data, rest = self._fill(view)
        if data is not None:
            self._offset += len(data)
            self._on_extended(data)
        return rest

    def _trailer(self, view):
        # After the end-of-archive blocks only zero padding may follow:
        # a second archive could hide a second disk.
        if view.tobytes().strip(b'\0'):
            raise self._refuse(_('data follows the end of the archive'))
        return view[len(view):]

    def _on_header(self, block):
        if block == _ZERO_BLOCK:
            self._ended += 1
            if self._ended == 2:
                self._state = self._trailer
            return
        if self._ended:
            raise self._refuse(_('a header follows an end-of-archive '
                                 'block'))
        if not _checksum_ok(block):
            raise self._refuse(_('the header at offset %d is corrupt')
                               % (self._offset - BLOCK))
        typeflag = block[156:157]
        extended = typeflag in (_PAX_NEXT, _PAX_GLOBAL, _GNU_LONG_NAME,
                                _GNU_LONG_LINK)
        try:
            size = _octal(block[124:136])
            if not extended and 'size' in self._pending:
                size = int(self._pending['size'])
        except ValueError:
            raise self._refuse(_('the header at offset %d has a bad size')
                               % (self._offset - BLOCK))
        if size < 0:
            raise self._refuse(_('the header at offset %d has a bad size')
                               % (self._offset - BLOCK))
        if extended:
            self._start_extended(typeflag, size)
            return
        path = self._path(block)
        pending, self._pending = self._pending, {}
        if any(key.startswith('GNU.sparse') for key in pending):
            raise self._refuse(_('%s is a sparse file') % path)
        if typeflag in _TYPE_NAMES:
            raise self._refuse(_('%(path)s is %(what)s') % {
                'path': path, 'what': _TYPE_NAMES[typeflag]})
        if typeflag not in _REGULAR + (_DIRECTORY,):
            raise self._refuse(_('%(path)s has an unknown type %(type)r')
                               % {'path': path, 'type': typeflag})
        self._start_data(path if typeflag in _REGULAR else None, size)

    def _path(self, block):
        name = self._pending.get('path')
        if name is None:
            name = _text(block[0:100])
            # Only POSIX ustar has a prefix field; GNU uses it otherwise.
            prefix = (_text(block[345:500])
                      if block[257:263] == b'ustar\0' else '')
            name = posixpath.join(prefix, name) if prefix else name
        if (not name or name.startswith('/') or '\0' in name
                or '..' in name.split('/')):
            raise self._refuse(_('the member name %r leaves the archive')
                               % name)
        return posixpath.normpath(name)

    def _start_extended(self, typeflag, size):
        if size > MAX_EXTENDED_HEADER:
            raise self._refuse(_('an extended header of %d bytes') % size)
        self._extended_kind = typeflag
        self._want = size
        self._padding = -size % BLOCK
        self._state = self._extended if size else self._skip_padding

    def _on_extended(self, data):
        kind = self._extended_kind
        self._want = BLOCK
        self._state = self._skip_padding if self._padding else self._header
        if kind == _GNU_LONG_NAME:
            self._pending['path'] = _text(data)
        elif kind == _PAX_NEXT:
            try:
                records = _pax_records(data)
            except ValueError:
                raise self._refuse(_('a pax header is malformed'))
            if 'linkpath' in records:
                raise self._refuse(_('%s is a link') % records.get(
                    'path', _('a member')))
            self._pending.update(records)
        elif kind == _PAX_GLOBAL:
            # Global records (a comment, a mtime) never name a member.
            if any(key in ('path', 'size') or key.startswith('GNU.sparse')
                   for key in _pax_records_quietly(data)):
                raise self._refuse(_('a global pax header sets names or '
                                     'sizes'))
        # A GNU long link name belongs to a link, refused at its header.

    def _start_data(self, path, size):
        self._data_left = size
        self._padding = -size % BLOCK
        self._emitting = False
        if path is not None and size:
            self._emitting = self._choose(path)
        self._state = self._data if size else self._header

    def _choose(self, path):
        """Whether this regular file is the disk (and is to be emitted)."""
        in_disk_dir = posixpath.dirname(path) == DISK_DIRECTORY
        if in_disk_dir:
            if self._from_disk_dir:
                raise self._refuse(_('it holds several disks in disk/: '
                                     '%(a)s and %(b)s') % {
                                         'a': self.member, 'b': path})
            if self.member is not None:
                raise self._refuse(
                    _('%(other)s comes before %(disk)s: a containerDisk '
                      'holds its disk alone') % {'other': self.member,
                                                 'disk': path})
            self.member, self._from_disk_dir = path, True
            return True
        if self._from_disk_dir:
            return False
        self._plain.append(path)
        if self.member is None:
            self.member = path
            return True
        return False


def _pax_records_quietly(data):
    try:
        return _pax_records(data)
    except ValueError:
        return {}
