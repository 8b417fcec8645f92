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

"""What a destination path is, and so how an image is written to it.

:func:`classify` sorts every path an image is written to into one of
three kinds, which every output path of the library (fetch, conversion,
cache hand-out, download) treats alike:

``file``
    A regular file, or a name to create: written atomically (a temp file
    beside it, fsync, rename), created with mode ``0666 & ~umask``.
``block``
    A block device (a Cinder volume, an LVM volume, an iSCSI or FC
    attachment, a loop device, a node's local disk): written in place,
    opened without truncation and never renamed over, after a check that
    it is large enough; every byte of the image's disk is written.
``stream``
    A character device, a FIFO, a socket, or one of this process's own
    open descriptors named as ``/dev/stdout``, ``/dev/fd/N`` or
    ``/proc/self/fd/N`` (written to through that very descriptor, whatever
    it is open on): written in order, never replaced.

A symlink is followed: the destination is what it points to (a regular
file is replaced beside its target and the link stays). A symlink to
nothing, a directory and a name in a missing directory are refused.
"""

import dataclasses
import errno
import fcntl
import os
import re
import stat
import struct
import typing

from ironic_images._i18n import _
from ironic_images import exception

FILE = 'file'
BLOCK = 'block'
STREAM = 'stream'

# <linux/fs.h>: _IOR(0x12, 114, size_t) and _IO(0x12, 104).
BLKGETSIZE64 = 0x80081272
BLKSSZGET = 0x1268
# Enough hops for any sane chain of links (the kernel allows 40).
_MAX_HOPS = 40


@dataclasses.dataclass(frozen=True)
class Destination:
    """A destination path, classified.

    :ivar path: the path as given.
    :ivar target: the path written: symlinks resolved (for a descriptor
        of this process, ``path`` itself).
    :ivar kind: :data:`FILE`, :data:`BLOCK` or :data:`STREAM`.
    :ivar fd: for one of this process's descriptors, its number; else
        None.
    """

    path: str
    target: str
    kind: str
    fd: typing.Optional[int] = None

    @property
    def is_file(self) -> bool:
        """Whether it is written atomically, as a regular file."""
        return self.kind == FILE

    @property
    def in_place(self) -> bool:
        """Whether it is written in place (a block device or a stream)."""
        return self.kind != FILE


def _own_descriptor(path):
    """The number of this process's descriptor that ``path`` names."""
    own = re.compile(r'/(?:proc/(?:self|thread-self|%d)/fd|dev/fd)/(\d+)'
                     % os.getpid())
    current = os.path.abspath(path)
    for _hop in range(_MAX_HOPS):
        match = own.fullmatch(current)
        if match:
            return int(match.group(1))
        try:
            link = os.readlink(current)
        except OSError:
            return None
        current = os.path.normpath(
            os.path.join(os.path.dirname(current), link))
    return None


def _refuse(path, image_href, reason):
    raise exception.InvalidDestination(image_href=image_href, path=path,
                                       reason=reason)


def classify(path: str, image_href: typing.Optional[str] = None
             ) -> Destination:
    """Tell what kind of destination ``path`` is.

    :param path: where an image is to be written.
    :param image_href: the image, for messages.
    :returns: a :class:`Destination`.
    :raises: InvalidDestination for a directory, a symlink to nothing, a
        name in a missing directory, a closed descriptor, or a path that
        cannot be looked at.
    """
    fd = _own_descriptor(path)
    if fd is not None:
        try:
            os.fstat(fd)
        except OSError as error:
            _refuse(path, image_href, _('descriptor %(fd)d: %(error)s') % {
                'fd': fd, 'error': os.strerror(error.errno)})
        return Destination(path, path, STREAM, fd)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            _refuse(path, image_href,
                    _('it is a symlink to nothing (%s)') % os.readlink(path))
        target = os.path.realpath(path)
        if not os.path.isdir(os.path.dirname(target)):
            _refuse(path, image_href, _('its directory does not exist'))
        return Destination(path, target, FILE)
    except OSError as error:
        _refuse(path, image_href, os.strerror(error.errno))
    target = os.path.realpath(path)
    if stat.S_ISDIR(st.st_mode):
        _refuse(path, image_href, _('it is a directory'))
    if stat.S_ISREG(st.st_mode):
        return Destination(path, target, FILE)
    if stat.S_ISBLK(st.st_mode):
        return Destination(path, target, BLOCK)
    return Destination(path, target, STREAM)


def block_device_size(fd: int) -> int:
    """The size of an open block device, in bytes.

    :param fd: a descriptor open on the device.
    :raises: OSError.
    """
    try:
        buf = fcntl.ioctl(fd, BLKGETSIZE64, bytes(8))
        return struct.unpack('Q', buf)[0]
    except OSError:
        return os.lseek(fd, 0, os.SEEK_END)


def logical_block_size(fd: int) -> int:
    """The logical block size of an open block device (512 or 4096).

    :param fd: a descriptor open on the device.
    :returns: the size; 512 when the device cannot tell.
    """
    try:
        buf = fcntl.ioctl(fd, BLKSSZGET, bytes(4))
        size = struct.unpack('i', buf)[0]
    except OSError:
        return 512
    return size if size > 0 and not size & (size - 1) else 512


def device_size(dest: Destination, image_href: typing.Optional[str] = None
                ) -> int:
    """The size of a block device, which must not be in use.

    It is opened with ``O_EXCL``, which the kernel refuses (EBUSY) for a
    mounted device or one another user holds exclusively.

    :param dest: a :class:`Destination` of kind :data:`BLOCK`.
    :param image_href: the image, for messages.
    :returns: its size in bytes.
    :raises: InvalidDestination when it cannot be opened or is in use.
    """
    try:
        fd = os.open(dest.target, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)
        try:
            return block_device_size(fd)
        finally:
            os.close(fd)
    except OSError as error:
        raise exception.InvalidDestination(
            image_href=image_href, path=dest.path, reason=open_error(error))


def open_error(error: OSError) -> str:
    """Why a device or stream could not be opened, for a message."""
    if error.errno == errno.EBUSY:
        return _('it is in use (mounted, or open by another exclusive '
                 'user)')
    return os.strerror(error.errno) if error.errno else str(error)


def check_fits(path: str, length: int, size: int,
               image_href: typing.Optional[str] = None) -> None:
    """Refuse a disk of ``length`` bytes for a device of ``size`` bytes.

    :param path: the device, for the message.
    :param length: the disk's size (the image's virtual size).
    :param size: the device's size.
    :param image_href: the image, for messages.
    :raises: ImageUnacceptable (check ``device_size``).
    """
    if length > size:
        raise exception.ImageUnacceptable(
            image_href=image_href, check='device_size',
            reason=_('its disk of %(length)d bytes does not fit on '
                     '%(path)s, a device of %(size)d bytes') % {
                'length': length, 'path': path, 'size': size})
