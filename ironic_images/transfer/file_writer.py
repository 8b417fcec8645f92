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

"""The pipeline stage that writes a transfer into the caller's file.

A :class:`FileWriter` writes a regular file with ``O_DIRECT`` for the
length of the transfer, and what direct I/O cannot take (an unaligned
tail or buffer, a file system that refuses the flag, an appending file)
through the page cache; any other file object through its ``write``.
The file is handed back with its flags as they were, positioned after
the last byte. ``[download]direct_io = False`` turns direct I/O off. Why
(and the figures): the contributor guide's "The transfer pipeline".
"""

import errno
import fcntl
import inspect
import io
import os
import stat

from oslo_log import log as logging

from ironic_images.conf import CONF

LOG = logging.getLogger(__name__)

# Direct I/O wants the offset, the length and the memory of each write
# aligned to the device's logical block (512 bytes or 4 KiB): a page is
# both, and the pipeline's buffers are whole pages.
ALIGNMENT = 4096

_O_DIRECT = getattr(os, 'O_DIRECT', 0)


class FileWriter:
    """A stage that writes every buffer to a binary file object.

    When the transfer ends (:meth:`close`), the file is positioned after
    the last byte written, as if every buffer had gone through its
    ``write``.

    :param image_file: a file object opened for binary writing.
    :param direct_io: write a regular file with ``O_DIRECT`` where it
        can; None: ``[download]direct_io``.
    """

    def __init__(self, image_file, direct_io=None):
        self._file = image_file
        self._start = _tell(image_file)
        if direct_io is None:
            direct_io = CONF.download.direct_io
        # Turned on by the first write, so that a writer made but never
        # used leaves the file alone.
        self._direct_wanted = direct_io
        self._direct = None
        self._direct_used = False

    @property
    def direct(self):
        """Whether some bytes went to the disk without the page cache."""
        return self._direct_used

    def update(self, data):
        """Write all of ``data``."""
        if self._direct_wanted:
            self._direct_wanted = False
            self._direct = _DirectFile.start(self._file, self._start)
        if self._direct is not None:
            data = self._direct.write(data)
            self._direct_used = self._direct_used or self._direct.used
            if not data:
                return
            self._end_direct()
        write = self._file.write
        while data:
            written = write(data)
            if written is None or written == len(data):
                return
            data = data[written:]

    def reset(self):
        """Go back to where writing started and drop what follows.

        :raises: io.UnsupportedOperation when the file cannot seek.
        """
        if self._start is None:
            raise io.UnsupportedOperation('the destination cannot seek')
        if self._direct is not None:
            self._direct.rewind(self._start)
            return
        self._file.seek(self._start)
        self._file.truncate()

    def close(self):
        """Give the file back, still open, as a write would have left it.

        Its flags are as they were and it is positioned after the last
        byte written.

        :raises: OSError when the flags cannot be restored.
        """
        self._end_direct()

    def _end_direct(self):
        if self._direct is not None:
            direct, self._direct = self._direct, None
            direct.end()


class _DirectFile:
    """A regular file written with ``O_DIRECT`` at explicit offsets."""

    def __init__(self, file_object, fd, flags, offset):
        self._file = file_object
        self._fd = fd
        self._flags = flags
        self.offset = offset
        self.used = False

    @classmethod
    def start(cls, image_file, offset):
        """Turn ``O_DIRECT`` on for ``image_file``.

        :returns: a :class:`_DirectFile` writing from ``offset``, or None
            when direct I/O cannot be used for this file.
        """
        if not _O_DIRECT or offset is None or offset % ALIGNMENT:
            return None
        try:
            plain = _plain_file(image_file)
            if plain is None:
                return None
            fd = plain.fileno()
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            if (flags & (os.O_APPEND | _O_DIRECT)
                    or not stat.S_ISREG(os.fstat(fd).st_mode)
                    or plain.tell() != offset):
                return None
            # What the caller wrote before must reach the file first.
            plain.flush()
            fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT)
        except (OSError, ValueError) as error:
            # A file system without direct I/O (EINVAL).
            LOG.debug('Writing through the page cache: %s', error)
            return None
        return cls(plain, fd, flags, offset)

    def write(self, view):
        """Write what direct I/O takes of ``view``: its whole blocks.

        :returns: what is left to write through the page cache: empty
            when all of ``view`` was written, the last partial block of
            the image, or everything from a write direct I/O refused.
        :raises: OSError for any failure but an unaligned write.
        """
        # Only the last piece of an image is not whole blocks (an image
        # smaller than a buffer is all last piece): its blocks still go
        # directly, the few bytes after them through the page cache.
        whole = view[:len(view) - len(view) % ALIGNMENT]
        try:
            while whole:
                written = os.pwrite(self._fd, whole, self.offset)
                if not written:
                    break
                self.used = True
                self.offset += written
                whole = whole[written:]
                view = view[written:]
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            LOG.debug('Direct I/O refused a write at offset %d; writing '
                      'through the page cache', self.offset)
        return view

    def rewind(self, offset):
        """Drop everything after ``offset`` and write from there."""
        os.ftruncate(self._fd, offset)
        self.offset = offset

    def end(self):
        """Give the file its flags back, after the last byte written."""
        fcntl.fcntl(self._fd, fcntl.F_SETFL, self._flags)
        self._file.seek(self.offset)


# The file objects of open(): their write() puts the bytes at the
# descriptor's position and does nothing else, which is what a write
# with pwrite() stands in for.
_PLAIN_FILES = (io.FileIO, io.BufferedWriter, io.BufferedRandom)


def _plain_file(image_file):
    """The file object of open() whose ``write`` ``image_file`` uses.

    That is ``image_file`` itself, or the file behind a wrapper that
    forwards its methods (Glance's ``_NoLink``, NamedTemporaryFile).

    :returns: the file object, or None when the bytes given to ``write``
        do not simply go to a file descriptor: a ``GzipFile`` has the
        descriptor of the file it compresses into, a subclass may count
        or change what it is given, BytesIO has no descriptor.
    """
    write = inspect.unwrap(getattr(image_file, 'write', None))
    plain = getattr(write, '__self__', None)
    if type(plain) not in _PLAIN_FILES:
        return None
    if type(plain) is not io.FileIO and type(plain.raw) is not io.FileIO:
        return None
    return plain


def _tell(image_file):
    try:
        return image_file.tell() if image_file.seekable() else None
    except (OSError, ValueError, AttributeError):
        return None
