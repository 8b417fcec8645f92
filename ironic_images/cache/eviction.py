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

"""What the master-image cache holds and what it evicts.

A master is a regular file of the cache directory whose name does not
start with a dot; its sidecar ``NAME.meta`` holds what is known of it.
Hidden names are the cache's own: ``.locks/`` and the temp files of writes
in progress (``.NAME.XXXXXXXX.part``, see
:mod:`ironic_images.common.fileutils`).

A master is in use while another name links to it (link count above 1):
the destinations of :meth:`ImageCache.fetch_image` are hardlinks. It is
then never evicted, since removing it would free nothing anyway. This also
covers a master that shares its inode with a file outside the cache.

The last use of a master is the later of its access and modification
times: the cache sets the access time whenever it hands a master out (even
on filesystems mounted ``noatime``). Sizes are the bytes allocated on disk,
so a sparse raw image counts for the data it holds.
"""

import collections
import os
import time

from oslo_log import log as logging
from oslo_utils import units

from ironic_images.cache import locks as cache_locks
from ironic_images.common import fileutils

LOG = logging.getLogger(__name__)

META_SUFFIX = '.meta'

Master = collections.namedtuple(
    'Master', ['name', 'path', 'size', 'allocated', 'last_used', 'links',
               'inode'])
Master.__doc__ = """A master image as found on disk.

:ivar name: the file name.
:ivar path: the full path.
:ivar size: its size in bytes (``st_size``).
:ivar allocated: the bytes allocated on disk (``st_blocks * 512``).
:ivar last_used: epoch seconds of its last use.
:ivar links: its link count.
:ivar inode: ``(st_dev, st_ino)``.
"""


def is_master_name(name):
    """Whether a directory entry of a cache is a master image."""
    return not name.startswith('.') and not name.endswith(META_SUFFIX)


def master_of(stat_result, name, path):
    """Build a :class:`Master` from the ``os.stat`` of its file."""
    return Master(name, path, stat_result.st_size,
                  stat_result.st_blocks * 512,
                  max(stat_result.st_atime, stat_result.st_mtime),
                  stat_result.st_nlink,
                  (stat_result.st_dev, stat_result.st_ino))


def list_masters(master_dir):
    """List the master images of a cache.

    :param master_dir: the cache directory.
    :returns: a list of :class:`Master`, in no particular order.
    :raises: OSError when the directory cannot be read.
    """
    masters = []
    with os.scandir(master_dir) as entries:
        for entry in entries:
            if not is_master_name(entry.name):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                stat_result = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # evicted meanwhile
            masters.append(master_of(stat_result, entry.name, entry.path))
    return masters


def eviction_order(masters, now, ttl):
    """Order the masters that may be evicted.

    :param masters: the :class:`Master` list of a cache.
    :param now: the current epoch time.
    :param ttl: seconds of disuse after which a master expires.
    :returns: ``(expired, others)``: the unused masters (link count 1)
        older than the TTL, then the other unused ones, each least
        recently used first.
    """
    unused = sorted((master for master in masters if master.links == 1),
                    key=lambda master: master.last_used)
    threshold = now - ttl
    expired = [master for master in unused if master.last_used < threshold]
    others = [master for master in unused if master.last_used >= threshold]
    return expired, others


def evict(masters, now, ttl, cache_size, amount, remove):
    """Evict masters: the expired ones, then LRU down to the size cap.

    Without ``amount``, every expired master goes, then the least recently
    used until the cache holds at most ``cache_size`` bytes. With
    ``amount``, expired masters go only until ``amount`` bytes are freed,
    then the least recently used until both ``amount`` bytes are freed and
    the cache is under its cap.

    :param masters: the :class:`Master` list of the cache.
    :param now: the current epoch time.
    :param ttl: seconds of disuse after which a master expires.
    :param cache_size: the size cap in bytes.
    :param amount: bytes to free, or None.
    :param remove: ``remove(master)`` removes one master and returns True,
        or returns False when it cannot (in use meanwhile).
    :returns: ``(removed, total, freed)``: the removed masters, the bytes
        the cache still holds and the bytes freed.
    """
    expired, others = eviction_order(masters, now, ttl)
    total = sum(master.allocated for master in masters)
    freed = 0
    removed = []
    for master in expired:
        if amount is not None and freed >= amount:
            break
        if remove(master):
            removed.append(master)
            total -= master.allocated
            freed += master.allocated
    for master in others:
        if total <= cache_size and (amount is None or freed >= amount):
            break
        if remove(master):
            removed.append(master)
            total -= master.allocated
            freed += master.allocated
    return removed, total, freed


def lock_name_of_leftover(name):
    """The master a hidden temp file of the cache belongs to.

    A temp file of a temp file (``..NAME.abcd1234.part.efgh5678.part``)
    and the temp file of a sidecar (``.NAME.meta.abcd1234.part``) belong
    to NAME too.

    :param name: a directory entry such as ``.NAME.abcd1234.part``.
    :returns: the master's name, or None when ``name`` is not a temp file.
    """
    stem = name
    while stem.startswith('.') and stem.endswith(fileutils.PART_SUFFIX):
        stem = stem[1:-len(fileutils.PART_SUFFIX)].rpartition('.')[0]
    if stem == name:
        return None
    if stem.endswith(META_SUFFIX):
        stem = stem[:-len(META_SUFFIX)]
    return stem if stem and is_master_name(stem) else None


def clean_up(master_dir, ttl, cache_size, amount=None):
    """Evict the unused masters of a cache (see :func:`evict`).

    Clean-ups of one cache run one at a time; a master whose lock is held
    (being looked up, downloaded or linked), or that cannot be removed
    (logged), is skipped.

    :param master_dir: the cache directory.
    :param ttl: seconds of disuse after which a master expires.
    :param cache_size: the size cap in bytes.
    :param amount: bytes to free, or None.
    :returns: the bytes freed.
    :raises: OSError when the directory cannot be read.
    """
    os.makedirs(os.path.join(master_dir, cache_locks.LOCK_DIR),
                exist_ok=True)
    with cache_locks.image_lock(master_dir, cache_locks.CLEANUP_LOCK):
        removed, total, freed = evict(
            list_masters(master_dir), time.time(), ttl, cache_size, amount,
            lambda master: _remove_unused(master_dir, master))
    if removed:
        LOG.info('Evicted %(n)d master image(s) (%(mib)d MiB) from '
                 '%(dir)s: %(names)s', {
                     'n': len(removed), 'mib': freed // units.Mi,
                     'dir': master_dir,
                     'names': ', '.join(m.name for m in removed)})
    if total > cache_size or (amount and freed < amount):
        LOG.info('Master-image cache %(dir)s still holds %(mib)d MiB: its '
                 'other masters are in use or recently used',
                 {'dir': master_dir, 'mib': total // units.Mi})
    return freed


def _remove_unused(master_dir, master):
    """Remove one master unless someone uses it; True when removed."""
    with cache_locks.try_lock(master_dir, master.name) as held:
        if not held:
            return False
        try:
            stat = os.stat(master.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.st_nlink != 1 or (stat.st_dev, stat.st_ino) != master.inode:
            return False
        try:
            os.unlink(master.path)
        except OSError as error:
            # One master that cannot go (another user's, in a sticky
            # directory) must not stop the eviction of the others.
            LOG.warning('Cannot evict %(path)s: %(error)s',
                        {'path': master.path,
                         'error': os.strerror(error.errno)})
            return False
        fileutils.remove_quietly(master.path + META_SUFFIX)
        return True


def remove_leftovers(master_dir):
    """Remove the temp files and orphan sidecars a crash left behind.

    A leftover is removed only while its master's lock is free, so the
    temp file of a download running in another process is left alone.

    :param master_dir: the cache directory.
    :returns: the names removed.
    :raises: OSError when the directory cannot be read.
    """
    try:
        names = os.listdir(master_dir)
    except FileNotFoundError:
        return []
    os.makedirs(os.path.join(master_dir, cache_locks.LOCK_DIR),
                exist_ok=True)
    removed = []
    for name in names:
        owner = lock_name_of_leftover(name)
        orphan = name.endswith(META_SUFFIX) and is_master_name(
            name[:-len(META_SUFFIX)])
        if orphan:
            owner = name[:-len(META_SUFFIX)]
        if owner is None or (orphan and os.path.exists(
                os.path.join(master_dir, owner))):
            continue
        with cache_locks.try_lock(master_dir, owner) as held:
            # Checked again under the lock: the master may just have come.
            if held and not (orphan and os.path.exists(
                    os.path.join(master_dir, owner))):
                fileutils.remove_quietly(os.path.join(master_dir, name))
                removed.append(name)
    if removed:
        LOG.info('Removed %(n)d leftover(s) of interrupted work from '
                 '%(dir)s: %(names)s', {'n': len(removed), 'dir': master_dir,
                                        'names': ', '.join(removed)})
    return removed
