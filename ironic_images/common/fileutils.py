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

"""Atomic file writes: a temp name beside the destination, fsync, rename.

A temp file gets the mode a new file of this process gets, ``0666 &
~umask`` (:func:`file_mode`), so the renamed file has it too. A
destination that is a symlink is followed: the temp file is made beside
its target and renamed over the target; the link stays.

A temp file is locked (``flock``) by the process that made it until it is
committed or removed, so the leftovers of a process that died (even by
SIGKILL: the kernel drops its locks) can be told from the temp files of a
live writer. :func:`part_path` removes the dead ones of the same
destination before it makes a new one, so the next run cleans up after a
crash.
"""

import contextlib
import errno
import fcntl
import os
import re
import stat
import tempfile
import threading

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

PART_SUFFIX = '.part'
# tempfile.mkstemp's random part: 8 of these characters.
_RANDOM = r'[a-z0-9_]{8}'
# Temp file -> the descriptor that holds its lock, until commit or removal.
_HELD = {}
_HELD_LOCK = threading.Lock()


def _after_fork_in_child():
    # Another thread may have held the lock at fork time; no thread of the
    # child will release it. The descriptors (and their locks, shared with
    # the parent) stay: the parent's writers are still alive.
    global _HELD_LOCK
    _HELD_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def fsync_dir(path):
    """Make a rename or link in directory ``path`` durable.

    :param path: a directory.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def umask():
    """The umask of this process, read without changing it.

    ``os.umask`` can only be read by setting it, which races with the
    files other threads create meanwhile; Linux shows it in
    ``/proc/self/status`` (since 4.7).

    :returns: the umask, e.g. ``0o022``.
    """
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def file_mode():
    """The mode of a new file of this process: ``0o666 & ~umask``."""
    return 0o666 & ~umask()


def resolved(dest):
    """The path a write to ``dest`` replaces: symlinks followed.

    :param dest: a destination path.
    :returns: the absolute path with symlinks resolved.
    """
    return os.path.realpath(dest)


def part_path(dest, follow_symlinks=True):
    """Return a new, unique temp name beside ``dest`` (created, empty).

    Names are ``.NAME.XXXXXXXX.part``, so leftovers of a crash are easy to
    find. The file stays locked by this process until :func:`commit` or
    :func:`remove_quietly`; the leftovers of ``dest`` that no live process
    holds are removed first (see :func:`remove_stale_parts`). It has the
    mode of :func:`file_mode` (``mkstemp`` alone would make it 0600), and
    is made beside the target of a symlink.

    :param dest: the final path.
    :param follow_symlinks: when False, ``dest`` is taken as it is: a
        symlink there is replaced by :func:`commit`, never followed.
    :returns: the path of the new empty temp file.
    """
    dest = resolved(dest) if follow_symlinks else os.path.abspath(dest)
    directory, name = os.path.split(dest)
    remove_stale_parts(dest)
    mode = file_mode()
    while True:
        fd, path = tempfile.mkstemp(prefix='.%s.' % name,
                                    suffix=PART_SUFFIX, dir=directory)
        try:
            os.fchmod(fd, mode)
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A cleaner may have removed the file between its creation
            # and the lock: then make another.
            if _is_open_file(path, fd):
                break
        except BaseException:
            # e.g. ENOLCK: a file system without locks.
            with contextlib.suppress(OSError):
                os.unlink(path)
            os.close(fd)
            raise
        os.close(fd)
    with _HELD_LOCK:
        _HELD[path] = fd
    return path


def _is_open_file(path, fd):
    """Whether ``path`` names the very file open as ``fd``."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _release(path):
    with _HELD_LOCK:
        fd = _HELD.pop(path, None)
    if fd is not None:
        os.close(fd)


def remove_stale_parts(dest):
    """Remove the temp files of ``dest`` that no live process writes.

    A temp file is stale when nobody holds its lock: its writer died.
    Temp files with more than one link (the file:// driver's hardlinks)
    are left alone: removing them would free nothing. So are the names
    this process holds, even when a writer put another file there than
    the locked one (the lock is on the file, not on the name).

    :param dest: the final path whose ``.NAME.XXXXXXXX.part`` are looked
        at.
    :returns: the names removed.
    """
    directory, name = os.path.split(resolved(dest))
    pattern = re.compile(re.escape('.%s.' % name) + _RANDOM
                         + re.escape(PART_SUFFIX))
    removed = []
    try:
        names = [entry for entry in os.listdir(directory)
                 if pattern.fullmatch(entry)]
    except OSError:
        return removed
    with _HELD_LOCK:
        held = set(_HELD)
    for entry in names:
        path = os.path.join(directory, entry)
        if path not in held and _remove_if_stale(path):
            removed.append(entry)
    if removed:
        LOG.info('Removed %(n)d temp file(s) left in %(dir)s by an '
                 'interrupted write: %(names)s',
                 {'n': len(removed), 'dir': directory,
                  'names': ', '.join(removed)})
    return removed


def _remove_if_stale(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # a live writer holds it
        opened = os.fstat(fd)
        if (not stat.S_ISREG(opened.st_mode) or opened.st_nlink != 1
                or not _is_open_file(path, fd)):
            return False
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def commit(part, dest, durable=True, follow_symlinks=True):
    """Atomically move a finished temp file to its destination.

    The temp file's lock is released once it is renamed.

    :param part: the temp file, already fsynced when ``durable``.
    :param dest: the final path; replaced if it exists (a symlink's
        target is replaced, not the link, unless ``follow_symlinks`` is
        False).
    :param durable: fsync the directory, so the rename survives a crash.
    :param follow_symlinks: as :func:`part_path`.
    """
    dest = resolved(dest) if follow_symlinks else os.path.abspath(dest)
    os.replace(part, dest)
    _release(part)
    if durable:
        fsync_dir(os.path.dirname(dest))


def remove_quietly(path):
    """Remove a file if it exists, ignoring errors.

    A temp file of :func:`part_path` is unlocked too.
    """
    with contextlib.suppress(OSError):
        os.unlink(path)
    _release(path)


@contextlib.contextmanager
def atomic_write(dest, follow_symlinks=True):
    """Write a file so that ``dest`` is either complete or untouched.

    Yields a binary file object at a temp name beside ``dest``; when the
    block succeeds it is flushed, fsynced and renamed over ``dest``; when
    it raises the temp file is removed. A writer may close the yielded
    object and replace its path (as the file:// driver does when it
    hardlinks); what is at the path is then committed as it is.

    :param dest: the final path.
    :param follow_symlinks: as :func:`part_path`.
    :raises: OSError from creating, syncing or renaming.
    """
    part = part_path(dest, follow_symlinks)
    try:
        with open(part, 'wb') as image_file:
            yield image_file
            if not image_file.closed:
                image_file.flush()
                os.fsync(image_file.fileno())
        commit(part, dest, follow_symlinks=follow_symlinks)
    except BaseException:
        remove_quietly(part)
        raise


def data_extents(fd, size):
    """The ranges of a file that hold data, as its file system tells.

    :param fd: a file descriptor open on the file.
    :param size: the file's length.
    :returns: an iterator of ``(start, end)`` byte ranges; the whole file
        where the file system does not report holes.
    :raises: OSError.
    """
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:
                return  # nothing but a hole is left
            if error.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                yield offset, size  # no hole reporting here
                return
            raise
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end
        offset = end
