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

"""Locks of the master-image cache, held across threads and processes.

Every lock is a file in the ``.locks`` directory of the cache, so every
process that uses the same cache directory shares them, whatever its
``[oslo_concurrency]lock_path``. A lock is taken in two steps, as
:func:`oslo_concurrency.lockutils.lock` with ``external=True`` does: the
process's semaphore for the name (threads), then a POSIX record lock on the
file (processes). Unlike lockutils, whose file lock polls with sleeps of up
to 100 ms, a blocking acquire here waits in the kernel, so a waiter wakes
as soon as the holder releases: a finished download is linked by every
waiter within milliseconds. The locks are the same ``lockf`` locks as
lockutils', so either can be used on these files.

Lock files are never removed: a process may be waiting on the file, and a
new file under the same name would give a second, separate lock.
"""

import contextlib
import errno
import fcntl
import os
import time

from oslo_concurrency import lockutils

LOCK_DIR = '.locks'
# The lock of the whole cache, held by clean-ups.
CLEANUP_LOCK = 'cleanup'
_SLOT_PREFIX = 'download-slot-'
# A busy download slot is tried again after this many seconds, doubling
# up to the maximum: downloads last seconds, so this costs nothing.
_SLOT_WAIT = 0.005
_SLOT_WAIT_MAX = 0.05
_BUSY = (errno.EAGAIN, errno.EACCES)


def lock_path(master_dir, name):
    """The lock file of a name in a cache.

    :param master_dir: the cache directory.
    :param name: the lock name (a master's file name, or ``cleanup``).
    :returns: the path of the lock file.
    """
    return os.path.join(master_dir, LOCK_DIR, name.replace(os.sep, '_'))


class FileLock:
    """One lock, exclusive across the threads and processes of a host.

    :param path: the lock file, created when missing.
    """

    def __init__(self, path):
        self.path = path
        self._semaphore = lockutils.internal_lock(path)
        self._fd = None

    def acquire(self, blocking=True):
        """Take the lock.

        :param blocking: wait for it; when False, give up at once if it is
            held.
        :returns: True when taken, False when busy (``blocking`` False).
        :raises: OSError when the lock file cannot be created.
        """
        if not self._semaphore.acquire(blocking=blocking):
            return False
        try:
            # Opened only under the semaphore: closing another descriptor
            # of this file in this process would drop its record lock.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o644)
        except BaseException:
            self._semaphore.release()
            raise
        try:
            taken = _lockf(fd, blocking)
        except BaseException:
            os.close(fd)
            self._semaphore.release()
            raise
        if not taken:
            os.close(fd)
            self._semaphore.release()
            return False
        self._fd = fd
        return True

    def release(self):
        """Release the lock (closing the file drops the record lock)."""
        fd, self._fd = self._fd, None
        try:
            os.close(fd)
        finally:
            self._semaphore.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()


def _lockf(fd, blocking):
    flags = fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB)
    while True:
        try:
            fcntl.lockf(fd, flags)
            return True
        except OSError as error:
            if not blocking and error.errno in _BUSY:
                return False
            if error.errno not in (errno.EDEADLK, errno.EINTR):
                raise
            # The kernel sees processes, not threads, so it may report a
            # deadlock between two threads that are not deadlocked.
            time.sleep(0.01)


def image_lock(master_dir, name):
    """The lock of one master image (or of ``cleanup``).

    :param master_dir: the cache directory.
    :param name: the master's file name.
    :returns: a :class:`FileLock`, not yet taken.
    """
    return FileLock(lock_path(master_dir, name))


@contextlib.contextmanager
def try_lock(master_dir, name):
    """Take a lock if it is free, without waiting.

    :param master_dir: the cache directory.
    :param name: the lock name.
    :returns: a context manager yielding True when the lock is held for
        the block, False when someone else holds it.
    """
    lock = image_lock(master_dir, name)
    taken = lock.acquire(blocking=False)
    try:
        yield taken
    finally:
        if taken:
            lock.release()


@contextlib.contextmanager
def download_slot(master_dir, count):
    """Hold one of ``count`` download slots of a cache.

    lockutils has no counting semaphore across processes: the slots are
    ``count`` numbered locks, tried in turn; when all are busy the caller
    sleeps a little and tries again.

    :param master_dir: the cache directory.
    :param count: how many downloads may run at once.
    :returns: a context manager yielding the number of the slot held.
    """
    wait = _SLOT_WAIT
    while True:
        for number in range(count):
            slot = image_lock(master_dir, '%s%d' % (_SLOT_PREFIX, number))
            if slot.acquire(blocking=False):
                try:
                    yield number
                finally:
                    slot.release()
                return
        time.sleep(wait)
        wait = min(wait * 2, _SLOT_WAIT_MAX)
