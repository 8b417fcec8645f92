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

"""Master images of the cache: names, sidecars, freshness, handing out.

The sidecar ``NAME.meta`` of a master is JSON: what its download was
accepted with (``checksums`` as ``algo:hex``, declared ``formats``), what
it is (``format``, ``size``, ``virtual_size``), the masked href, and how to
revalidate it (``etag`` and ``last_modified`` for HTTP, a ``fingerprint``
of ``show()`` for other mutable schemes, ``validated_at``). It names the
master (its file name, which says which image it is) and the master's
inode, size and mtime, so a sidecar that does not describe the file beside
it -- another image's sidecar, a master renamed or linked under another
name -- is ignored. A master must be a regular file: a symbolic link in
its place is never followed, never handed out.

Master names are unique per image: ``url-SHA256(href)``, or a driver's
content key (``glance-<id>``, ``oci-sha256-<hex>``) when it is a plain
name, else ``key-SHA256(key)``; no name ends in ``.raw`` or ``.meta`` or
takes the shape of another kind of name.
"""

import collections
import errno
import fcntl
import hashlib
import json
import os
import re
import stat as stat_module
import time

from oslo_log import log as logging
from oslo_utils import units

from ironic_images.cache import eviction as cache_eviction
from ironic_images.common import destinations
from ironic_images.common import fileutils
from ironic_images import image_service
from ironic_images.sink import destination

LOG = logging.getLogger(__name__)

# 2: the sidecar names its master.
META_VERSION = 2
# A sidecar is a few hundred bytes; a larger one is not ours.
_MAX_META = 64 * units.Ki
# A link cannot be made: another filesystem, not allowed, too many links.
_CANNOT_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP)
_NO_COPY_FILE_RANGE = (errno.EXDEV, errno.EINVAL, errno.ENOSYS,
                       errno.EOPNOTSUPP)
_COPY_CHUNK = 8 * units.Mi
_REQUIRED = {'validated_at': (int, float), 'formats': list,
             'checksums': list, 'size': int}
# A content key kept as the master's name: plain characters, no dot
# first, and not the shape of a name made another way.
_PLAIN_KEY = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$')
_RESERVED_NAME = re.compile(
    r'^(?:url|key)-[0-9a-f]{64}$|^[A-Za-z0-9]+-sha(?:256|512)-[0-9a-f]+$|'
    r'\.(?:raw|meta)$')
# A digest key (``oci-sha256:HEX``), named ``oci-sha256-HEX``.
_DIGEST_KEY = re.compile(r'^([A-Za-z0-9]+)-(sha256|sha512):([0-9a-f]+)$')
_NO_FOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK

Source = collections.namedtuple(
    'Source', ['kind', 'name', 'href', 'service', 'properties', 'immutable'])
Source.__doc__ = """An image as the cache sees it.

:ivar kind: the scheme of the href it was asked by (``glance``, ``oci``,
    ``https``...).
:ivar name: the name of its master (without ``.raw``).
:ivar href: what to download (an OCI tag resolved to a digest).
:ivar service: its driver.
:ivar properties: what is known of it already, or None.
:ivar immutable: its content never changes under ``name``: no
    revalidation.
"""


def identify(href, ctx=None, image_auth_data=None, cpu_arch=None):
    """Tell which master an image has, through its driver's contract.

    :param href: the image.
    :param ctx: the request context, or None.
    :param image_auth_data: credentials for the driver, or None.
    :param cpu_arch: for an OCI index, the architecture to pick, or None.
    :returns: a :class:`Source`.
    :raises: UnknownImageService; what the driver's ``resolve`` raises
        (ImageNotFound when no artifact matches ``cpu_arch``).
    """
    service = image_service.get_image_service(href, context=ctx)
    if image_auth_data is not None and service.is_auth_set_needed:
        service.set_image_auth(href, image_auth_data)
    resolved = service.resolve(href, cpu_arch=cpu_arch)
    kind = image_service.image_scheme(href)
    if resolved.content_key:
        return Source(kind, content_name(resolved.content_key),
                      resolved.href, service, resolved.properties, True)
    name = 'url-' + hashlib.sha256(href.encode('utf-8')).hexdigest()
    return Source(kind, name, resolved.href, service, resolved.properties,
                  False)


def content_name(key):
    """The master name of a driver's content key; one name per key.

    :param key: ``glance-<id>``, ``oci-sha256:<hex>`` or any driver's key.
    :returns: the key itself when it is a plain name, ``PREFIX-ALGO-HEX``
        for a digest key, else ``key-`` and the SHA-256 of the key. Two
        keys never share a name, and no name is ``url-`` and 64 hex
        digits (an href's master), ends in ``.raw`` (a converted master's
        suffix) or ``.meta`` (a sidecar), or starts with a dot.
    """
    digest = _DIGEST_KEY.match(key)
    if digest:
        return '-'.join(digest.groups())
    if _PLAIN_KEY.match(key) and not _RESERVED_NAME.search(key):
        return key
    return 'key-' + hashlib.sha256(key.encode('utf-8')).hexdigest()


def meta_path(master):
    """The sidecar of a master."""
    return master + cache_eviction.META_SUFFIX


def _identity(stat):
    return [stat.st_ino, stat.st_size, stat.st_mtime_ns]


def read_meta(master):
    """Read the sidecar of a master.

    :param master: the master's path.
    :returns: the sidecar's dict, or None when the master or its sidecar
        is missing, unreadable, or the sidecar describes another file.
    """
    try:
        # Neither the master nor its sidecar may be a symbolic link (to
        # another image, to a secret, to an endless device).
        fd = os.open(meta_path(master), _NO_FOLLOW)
        with open(fd, 'rb') as meta_file:
            if not stat_module.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = meta_file.read(_MAX_META + 1)
        meta = json.loads(data) if len(data) <= _MAX_META else None
        stat = os.lstat(master)
    except (OSError, ValueError, RecursionError):
        return None
    if (not isinstance(meta, dict) or meta.get('version') != META_VERSION
            or not stat_module.S_ISREG(stat.st_mode)
            or meta.get('name') != os.path.basename(master)
            or meta.get('identity') != _identity(stat)):
        return None
    for key, kind in _REQUIRED.items():
        if not isinstance(meta.get(key), kind):
            return None
    return meta


def remove_unless_regular(master):
    """Remove what stands at a master's path unless it is a regular file.

    A fetch follows a symbolic link at its destination (a user's link to
    a device is meant to be written through); a master is the cache's own
    file, so a link planted in its place is removed before one is written
    there, not followed to whatever it names.

    :param master: the master's path (its lock held).
    :raises: OSError.
    """
    try:
        if stat_module.S_ISREG(os.lstat(master).st_mode):
            return
    except FileNotFoundError:
        return
    os.unlink(master)


def write_meta(master, meta, durable):
    """Write the sidecar of a master atomically.

    :param master: the master's path (it must exist).
    :param meta: the dict to record; its ``identity`` is set here.
    :param durable: fsync it; a refreshed ``validated_at`` need not be
        (losing it costs one more revalidation).
    :raises: OSError.
    """
    meta['version'] = META_VERSION
    meta['name'] = os.path.basename(master)
    meta['identity'] = _identity(os.lstat(master))
    data = json.dumps(meta, sort_keys=True).encode('utf-8')
    # The cache's own files: a link planted in their place is replaced,
    # never written through.
    if durable:
        with fileutils.atomic_write(meta_path(master),
                                    follow_symlinks=False) as meta_file:
            meta_file.write(data)
        return
    part = fileutils.part_path(meta_path(master), follow_symlinks=False)
    try:
        with open(part, 'wb') as meta_file:
            meta_file.write(data)
        fileutils.commit(part, meta_path(master), durable=False,
                         follow_symlinks=False)
    except BaseException:
        fileutils.remove_quietly(part)
        raise


def validators(source, properties):
    """How a master of an image will be revalidated.

    :param source: the image, as :func:`identify` returns it.
    :param properties: what the driver's ``show()`` returned.
    :returns: a dict of ``etag``, ``last_modified`` and ``fingerprint``
        (all None for immutable content); None when the image must not be
        cached: ``no_cache``, or nothing to revalidate it by.
    """
    if properties.get('no_cache'):
        return None
    if source.immutable:
        return {'etag': None, 'last_modified': None, 'fingerprint': None}
    return source.service.cache_validators(properties)


def unchanged(source, meta):
    """Ask the source whether a master is still current.

    :param source: the image, as :func:`identify` returns it.
    :param meta: the master's sidecar.
    :returns: True when the source says the image did not change.
    :raises: what the driver raises.
    """
    return source.service.is_unchanged(
        source.href, etag=meta.get('etag'),
        last_modified=meta.get('last_modified'),
        fingerprint=meta.get('fingerprint'))


class HandOut:
    """Put a master at a destination: a hardlink, else a sparse copy.

    In two steps, so the master's lock is held only for the first:
    :meth:`take` (under the lock) records the use and links the master to
    a temp name beside the destination, or opens it for a copy when it
    cannot be linked; either keeps the inode alive, whatever eviction does
    next, and the temp name stays locked (``flock``) so that another write
    to the destination does not remove it as a leftover. :meth:`finish`
    (after the lock is released) copies if needed and renames the temp
    name over the destination, durably: the destination is always either
    its previous file or the whole image. Call :meth:`abort` instead to
    undo :meth:`take`.

    A hardlink shares the master's inode, and so its mode (that of a file
    the cache made: ``0666 & ~umask``); a copy is a new file with the
    mode of :func:`ironic_images.common.fileutils.file_mode`. A block
    device or a stream is never linked to: the master is copied onto it
    in place (:func:`ironic_images.sink.destination.copy_to`), holes
    zeroed.

    :param master: the master's path.
    :param dest: the destination.
    :param image_href: the image, for messages (default: ``master``).
    """

    def __init__(self, master, dest, image_href=None):
        self.master = master
        self.dest = dest
        self._href = image_href or master
        self._part = None
        self._source = None
        self._guard = None
        self._in_place = None

    def take(self):
        """Record the use of the master and reserve its inode.

        The master's access time is set to now: it records the last use.
        Nothing is reserved when the destination already is the master.

        :raises: OSError; ELOOP when the master is a symbolic link,
            EINVAL when it is not a regular file or changed while it was
            linked.
        """
        # Opened without following a link: what is checked, timed and
        # linked is the inode that was opened, a regular file.
        fd = os.open(self.master, _NO_FOLLOW)
        try:
            self._take(fd)
        finally:
            os.close(fd)

    def _take(self, fd):
        stat = os.fstat(fd)
        if not stat_module.S_ISREG(stat.st_mode):
            raise OSError(errno.EINVAL, 'not a regular file', self.master)
        try:
            os.utime(fd, ns=(time.time_ns(), stat.st_mtime_ns))
        except PermissionError:
            # A master of another user (a cache shared between services):
            # eviction then sees its older last use.
            LOG.debug('Cannot record the use of %s', self.master)
        if destinations.classify(self.dest, self._href).in_place:
            # Opened now: the inode stays whatever eviction does next.
            self._source = open(self.master, 'rb')
            self._in_place = True
            return
        try:
            current = os.stat(self.dest)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (
                stat.st_dev, stat.st_ino):
            return
        # The temp name is locked (flock) until finish, as part_path locks
        # its files: another write to the destination removes the temp
        # files nobody holds, and this one must not look like a leftover.
        part = fileutils.part_path(self.dest)
        try:
            os.unlink(part)
            try:
                os.link(self.master, part)
            except OSError as error:
                if error.errno not in _CANNOT_LINK:
                    raise
                LOG.debug('Cannot hardlink %(master)s to %(dest)s '
                          '(%(error)s); copying it', {
                              'master': self.master, 'dest': self.dest,
                              'error': os.strerror(error.errno)})
                self._source = os.fdopen(os.dup(fd), 'rb')
                # The name just unlinked lost its lock: copy into a new
                # one, which part_path locks.
                fileutils.remove_quietly(part)
                part = fileutils.part_path(self.dest)
            else:
                # Shared: every hand-out of one master may hold it.
                self._guard = _lock_shared(part)
                # Linked by name: keep it only if it is the inode opened.
                linked = os.fstat(self._guard)
                if (linked.st_dev, linked.st_ino) != (stat.st_dev,
                                                      stat.st_ino):
                    raise OSError(errno.EINVAL,
                                  'the master changed while it was linked',
                                  self.master)
        except BaseException:
            fileutils.remove_quietly(part)
            self._part = None
            self.abort()
            raise
        self._part = part

    def finish(self):
        """Copy if needed and move the result to the destination.

        :raises: OSError; nothing is left beside the destination then;
            for a device or a stream, what
            :func:`ironic_images.sink.destination.copy_to` raises.
        """
        if self._in_place:
            try:
                destination.copy_to(self._source, self.dest, self._href)
            finally:
                self.abort()
            return
        if self._part is None:
            return
        try:
            if self._source is not None:
                _copy_sparse_fd(self._source.fileno(), self._part)
            fileutils.commit(self._part, self.dest)
            self._part = None
        finally:
            self.abort()

    def abort(self):
        """Undo :meth:`take`: remove the temp name, close the master."""
        if self._source is not None:
            self._source.close()
            self._source = None
        if self._part is not None:
            fileutils.remove_quietly(self._part)
            self._part = None
        if self._guard is not None:
            os.close(self._guard)
            self._guard = None


def _lock_shared(path):
    """Open a file and hold a shared ``flock`` on it; returns the fd."""
    # Never follows a link, never waits for a FIFO's writer: the caller
    # checks that it is the inode it linked.
    fd = os.open(path, _NO_FOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


def hand_out(master, dest):
    """Put a master at ``dest`` in one step (see :class:`HandOut`).

    :param master: the master's path.
    :param dest: the destination.
    :raises: OSError.
    """
    handout = HandOut(master, dest)
    handout.take()
    handout.finish()


def copy_sparse(source, dest):
    """Copy a file, keeping its holes, and fsync the copy.

    Only the data extents (``SEEK_DATA``/``SEEK_HOLE``) are copied, with
    ``copy_file_range`` where the kernel can, else ``pread``/``pwrite``.

    :param source: the file to copy.
    :param dest: the copy (created or truncated).
    :raises: OSError.
    """
    with open(source, 'rb') as src:
        _copy_sparse_fd(src.fileno(), dest)


def _copy_sparse_fd(in_fd, dest):
    with open(dest, 'wb') as dst:
        out_fd = dst.fileno()
        size = os.fstat(in_fd).st_size
        kernel = [True]
        for start, end in fileutils.data_extents(in_fd, size):
            _copy_range(in_fd, out_fd, start, end, kernel)
        os.ftruncate(out_fd, size)
        os.fsync(out_fd)


def _copy_range(in_fd, out_fd, offset, end, kernel):
    while offset < end:
        count = end - offset
        copied = None
        if kernel[0]:
            try:
                copied = os.copy_file_range(in_fd, out_fd, count, offset,
                                            offset)
            except OSError as error:
                if error.errno not in _NO_COPY_FILE_RANGE:
                    raise
                kernel[0] = False
        if copied is None:
            data = os.pread(in_fd, min(count, _COPY_CHUNK), offset)
            copied = os.pwrite(out_fd, data, offset) if data else 0
        if not copied:
            raise OSError(errno.EIO, 'the file shrank while it was copied')
        offset += copied
