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

"""The file:// image service: images on this host's filesystem.

A file:// href is served only from under ``[file]allowed_paths``, never
from the always-blocked directories. :func:`trusted_local_file` lets a
program read one more file, named by the person who runs it.
"""

import contextlib
import contextvars
import datetime
import errno
import io
import os
import stat
import urllib.parse

from oslo_log import log as logging
from oslo_utils import units

from ironic_images._i18n import _
from ironic_images.common import fileutils
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.image_service import base
from ironic_images.image_service import checksum_files
from ironic_images.transfer import file_writer
from ironic_images.transfer import pipeline

LOG = logging.getLogger(__name__)

MAX_TEXT_SIZE = 16 * units.Mi

# Never served, whatever [file]allowed_paths says: devices, kernel and
# process state, boot files and host configuration.
ALWAYS_BLOCKED = ('/dev', '/proc', '/sys', '/boot', '/etc', '/run')

# Files allowed beside [file]allowed_paths in this context (thread) only:
# see trusted_local_file.
_TRUSTED_FILES = contextvars.ContextVar('ironic_images_trusted_files',
                                        default=frozenset())


def _is_within(path, directory):
    return os.path.commonpath([path, directory]) == directory


def check_path_allowed(path, image_href):
    """Refuse a resolved path that file:// images may not come from.

    :param path: an absolute path with symlinks and ``..`` resolved.
    :param image_href: the href, for the error message.
    :raises: ImageRefValidationFailed when the path is always blocked or
        outside every ``[file]allowed_paths`` directory.
    """
    for blocked in ALWAYS_BLOCKED:
        if _is_within(path, blocked):
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('%(path)s is under %(blocked)s, which is never '
                         'allowed') % {'path': path, 'blocked': blocked})
    if path in _TRUSTED_FILES.get():
        return
    allowed = [os.path.realpath(p) for p in CONF.file.allowed_paths if p]
    if not allowed:
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('file:// images are disabled ([file]allowed_paths is '
                     'empty)'))
    if not any(_is_within(path, directory) for directory in allowed):
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('%(path)s is not under any of [file]allowed_paths '
                     '(%(allowed)s)') % {'path': path,
                                         'allowed': ', '.join(allowed)})


@contextlib.contextmanager
def trusted_local_file(path):
    """Serve one local file as file:// does, outside ``[file]allowed_paths``.

    For a program run by a person who names a file of theirs (the
    ``ironic-images`` command): the allow-list protects a service from
    the hrefs of its users, not a person from their own files. Only that
    file (symlinks resolved) is allowed, only in the current context (the
    calling thread), and never under :data:`ALWAYS_BLOCKED`; every other
    check of the driver applies.

    :param path: the file, absolute or relative to the working directory.
    :returns: a context manager yielding the ``file://`` href of the file.
    """
    resolved = os.path.realpath(path)
    token = _TRUSTED_FILES.set(_TRUSTED_FILES.get() | {resolved})
    try:
        yield 'file://' + urllib.parse.quote(resolved)
    finally:
        _TRUSTED_FILES.reset(token)


def href_to_path(image_href):
    """Turn a ``file:///absolute/path`` href into a resolved path.

    :param image_href: the href.
    :returns: the absolute path with symlinks and ``..`` resolved.
    :raises: ImageRefValidationFailed for a host part, a relative path or a
        query or fragment.
    """
    try:
        parts = urllib.parse.urlsplit(image_href)
    except ValueError as error:
        raise exception.ImageRefValidationFailed(
            image_href=image_href, reason=_('not a valid URL: %s') % error)
    if parts.scheme.lower() != 'file':
        reason = _('not a file:// href')
    elif parts.netloc:
        reason = _('a file:// href may not name a host (%s); use '
                   'file:///absolute/path') % parts.netloc
    elif parts.query or parts.fragment:
        reason = _('a file:// href may not carry a query or a fragment')
    elif not parts.path.startswith('/'):
        reason = _('the path must be absolute: file:///absolute/path')
    else:
        path = urllib.parse.unquote(parts.path)
        if '\x00' in path:
            reason = _('the path contains a NUL byte')
        else:
            return os.path.realpath(path)
    raise exception.ImageRefValidationFailed(image_href=image_href,
                                             reason=reason)


def _updated_at(st):
    return datetime.datetime.fromtimestamp(
        st.st_mtime, tz=datetime.timezone.utc).replace(tzinfo=None)


class FileImageService(base.BaseImageService):
    """Images on the local filesystem, under ``[file]allowed_paths``.

    Every check (scheme, absolute path, symlinks and ``..`` resolved,
    blocked and allowed directories, regular file) runs before the file is
    opened; the opened file is checked again, so a path swapped in between
    is refused too.
    """

    reports_progress = True
    is_local = True

    def validate_href(self, image_href):
        """Validate a file:// href without opening the file.

        :param image_href: ``file:///absolute/path``.
        :returns: the resolved path of the image.
        :raises: ImageRefValidationFailed with the reason.
        """
        path = href_to_path(image_href)
        check_path_allowed(path, image_href)
        try:
            st = os.stat(path)
        except OSError as error:
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('cannot stat %(path)s: %(error)s') % {
                    'path': path, 'error': os.strerror(error.errno)})
        if not stat.S_ISREG(st.st_mode):
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('%s is not a regular file') % path)
        return path

    def _open_checked(self, image_href):
        """Open the image and verify what was opened, not just the path."""
        path = self.validate_href(image_href)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC)
        except OSError as error:
            raise exception.ImageRefValidationFailed(
                image_href=image_href,
                reason=_('cannot open %(path)s: %(error)s') % {
                    'path': path, 'error': os.strerror(error.errno)})
        try:
            opened = os.readlink('/proc/self/fd/%d' % fd)
            check_path_allowed(opened, image_href)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise exception.ImageRefValidationFailed(
                    image_href=image_href,
                    reason=_('%s is not a regular file') % opened)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def show(self, image_href):
        """Return the properties of a local image.

        :param image_href: ``file:///absolute/path``.
        :returns: ``size``, ``updated_at`` (naive UTC, from the mtime),
            ``properties`` (``path``) and ``no_cache`` (True: the
            image is already local).
        :raises: ImageRefValidationFailed with the reason.
        """
        path = self.validate_href(image_href)
        st = os.stat(path)
        return {'size': st.st_size,
                'updated_at': _updated_at(st),
                'properties': {'path': path},
                'no_cache': True}

    def download(self, image_href, image_file, checksum=None,
                 checksum_algo=None, progress=None):
        """Put a local image into ``image_file``, verified.

        When ``image_file`` is a named regular file on the image's
        filesystem, and the image has the owner and mode a file this
        process creates would have (:func:`ironic_images.common.fileutils.
        file_mode`), the image is hardlinked to that name (the file object
        is closed): the link shares the image's inode, and so its mode and
        owner. Otherwise it is copied: with ``copy_file_range`` (a reflink
        where the filesystem can) when there is nothing to verify, else in
        one read that hashes and writes.

        :param image_href: ``file:///absolute/path``.
        :param image_file: a binary file object opened for writing.
        :param checksum: expected checksum (``algo:hex``, bare hex or the
            URL of a checksum file).
        :param checksum_algo: algorithm of a bare-hex ``checksum``.
        :param progress: ``progress(done, total)`` callback, or None; a
            link or a kernel copy reports once, when done.
        :returns: the checksum verified, ``algo:hex``, or None.
        :raises: ImageRefValidationFailed, ImageChecksumError,
            ImageDownloadFailed
        """
        expected = checksum_files.resolve_checksum(checksum, checksum_algo,
                                                   image_href)
        self._transfer_verified_checksum = None
        fd = self._open_checked(image_href)
        try:
            with open(fd, 'rb', buffering=0, closefd=False) as source:
                if self._try_hardlink(fd, source, image_file, expected,
                                      image_href):
                    LOG.debug('Hardlinked %s', image_href)
                elif expected is not None:
                    self._copy_verified(source, image_file, expected,
                                        image_href)
                else:
                    _copy_fast(fd, image_file, image_href)
            if progress is not None:
                size = os.fstat(fd).st_size
                progress(size, size)
        except OSError as error:
            raise exception.ImageDownloadFailed(
                image_href=image_href, reason=os.strerror(error.errno)
                if error.errno else str(error))
        finally:
            os.close(fd)
        if expected is not None:
            self._transfer_verified_checksum = str(expected)
        return self._transfer_verified_checksum

    def get(self, image_href):
        """Return the text of a small local file, such as a checksum file.

        :param image_href: ``file:///absolute/path``.
        :returns: the text.
        :raises: ImageRefValidationFailed; ImageDownloadFailed when the
            file is larger than 16 MiB or cannot be read.
        """
        fd = self._open_checked(image_href)
        body = io.BytesIO()
        try:
            with open(fd, 'rb', buffering=0, closefd=False) as source:
                pipeline.stream(source, [file_writer.FileWriter(body)],
                                image_href, max_size=MAX_TEXT_SIZE)
        finally:
            os.close(fd)
        return body.getvalue().decode('utf-8', errors='replace')

    def _try_hardlink(self, fd, source, image_file, expected, image_href):
        dest = getattr(image_file, 'name', None)
        if not isinstance(dest, str) or not os.path.isfile(dest):
            return False
        source_stat = os.fstat(fd)
        if os.stat(dest).st_dev != source_stat.st_dev:
            return False
        if (stat.S_IMODE(source_stat.st_mode) != fileutils.file_mode()
                or source_stat.st_uid != os.geteuid()):
            # Every output of the library is a file of this process's
            # mode; a link would give the destination the image's.
            return False
        if expected is not None:
            hasher = expected.new_hasher()
            pipeline.stream(source, [hasher], image_href,
                            expected_size=os.fstat(fd).st_size)
            expected.verify(hasher.hexdigest(), image_href)
        # Link by path, then keep the link only if it is the very inode
        # that was opened and verified: the path may have been swapped.
        link = fileutils.part_path(dest)
        # Only the unique name is wanted (and its lock released).
        fileutils.remove_quietly(link)
        try:
            os.link(os.readlink('/proc/self/fd/%d' % fd), link,
                    follow_symlinks=False)
        except OSError as error:
            LOG.debug('Cannot hardlink %(href)s: %(error)s; copying',
                      {'href': image_href, 'error': error})
            return False
        if not _same_inode(os.stat(link, follow_symlinks=False),
                           os.fstat(fd)):
            fileutils.remove_quietly(link)
            return False
        image_file.close()
        os.replace(link, dest)
        return True

    def _copy_verified(self, source, image_file, expected, image_href):
        hasher = expected.new_hasher()
        source.seek(0)
        pipeline.stream(source, [hasher, file_writer.FileWriter(image_file)],
                        image_href, expected_size=os.fstat(
                            source.fileno()).st_size)
        expected.verify(hasher.hexdigest(), image_href)


def _same_inode(first, second):
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _copy_fast(fd, image_file, image_href):
    """Copy in the kernel (copy_file_range, a reflink where it can be).

    Falls back to the transfer pipeline for a destination the kernel
    cannot copy into (no file descriptor, a pipe, an old kernel).
    """
    size = os.fstat(fd).st_size
    offset = 0
    try:
        image_file.flush()
        out = image_file.fileno()
        while offset < size:
            copied = os.copy_file_range(fd, out, size - offset, offset)
            if not copied:
                break
            offset += copied
    except (OSError, io.UnsupportedOperation) as error:
        if getattr(error, 'errno', None) not in _NO_COPY_FILE_RANGE:
            raise
    if offset < size:
        os.lseek(fd, offset, os.SEEK_SET)
        with open(fd, 'rb', buffering=0, closefd=False) as source:
            pipeline.stream(source, [file_writer.FileWriter(image_file)],
                            image_href, expected_size=size - offset)


_NO_COPY_FILE_RANGE = (None, errno.EXDEV, errno.EINVAL, errno.ENOSYS,
                       errno.EOPNOTSUPP, errno.EBADF)
