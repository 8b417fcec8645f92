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

"""Atomic file writes: a temp name beside the destination, fsync, rename."""

import contextlib
import os
import tempfile

PART_SUFFIX = '.part'


def fsync_dir(path):
    """Make a rename or link in directory ``path`` durable.

    :param path: a directory.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def part_path(dest):
    """Return a new, unique temp name beside ``dest`` (created, empty).

    Names start with a dot and end in ``.part``, so leftovers of a crash are
    easy to find and clean.

    :param dest: the final path.
    :returns: the path of the new empty temp file.
    """
    directory, name = os.path.split(os.path.abspath(dest))
    fd, path = tempfile.mkstemp(prefix='.%s.' % name, suffix=PART_SUFFIX,
                                dir=directory)
    os.close(fd)
    return path


def commit(part, dest):
    """Atomically move a finished temp file to its destination, durably.

    :param part: the temp file, already fsynced.
    :param dest: the final path; replaced if it exists.
    """
    os.replace(part, dest)
    fsync_dir(os.path.dirname(os.path.abspath(dest)))


def remove_quietly(path):
    """Remove a file if it exists, ignoring errors."""
    with contextlib.suppress(OSError):
        os.unlink(path)


@contextlib.contextmanager
def atomic_write(dest):
    """Write a file so that ``dest`` is either complete or untouched.

    Yields a binary file object at a temp name beside ``dest``; when the
    block succeeds it is flushed, fsynced and renamed over ``dest``; when
    it raises the temp file is removed. A writer may close the yielded
    object and replace its path (as the file:// driver does when it
    hardlinks); what is at the path is then committed as it is.

    :param dest: the final path.
    :raises: OSError from creating, syncing or renaming.
    """
    part = part_path(dest)
    try:
        with open(part, 'wb') as image_file:
            yield image_file
            if not image_file.closed:
                image_file.flush()
                os.fsync(image_file.fileno())
        commit(part, dest)
    except BaseException:
        remove_quietly(part)
        raise
