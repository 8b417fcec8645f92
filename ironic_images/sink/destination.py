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

"""Writing to any destination: open it, copy a file onto it, download.

The destination's kind comes from
:func:`ironic_images.common.destinations.classify`. A regular file is
written atomically through :mod:`ironic_images.common.fileutils`; a block
device or a stream is opened here as an
:class:`~ironic_images.sink.outputs.Output` and written in place: once a
byte has reached it, a failure raises
:class:`~ironic_images.exception.DestinationUndefined`.
"""

import contextlib
import errno
import os

from oslo_utils import units

from ironic_images._i18n import _
from ironic_images.common import destinations
from ironic_images.common import fileutils
from ironic_images import exception
from ironic_images.sink import device_output
from ironic_images.sink import image_sink
from ironic_images.sink import outputs

_COPY_CHUNK = 8 * units.Mi


def open_output(dest, image_href=None, size=None):
    """Open a device or a stream for writing in place.

    :param dest: a :class:`~ironic_images.common.destinations.Destination`
        that is not a regular file.
    :param image_href: the image, for messages.
    :param size: the bytes the image's disk will have, when known: a
        device smaller than that is refused before it is written.
    :returns: a :class:`~ironic_images.sink.device_output.DeviceOutput` or
        a :class:`~ironic_images.sink.outputs.StreamOutput`; close it.
    :raises: InvalidDestination when it cannot be opened (a mounted
        device: EBUSY); ImageUnacceptable when the device is too small.
    """
    try:
        if dest.kind == destinations.BLOCK:
            output = device_output.DeviceOutput(dest.target, image_href)
            if size is not None:
                try:
                    output.check_fits(size)
                except BaseException:
                    output.close()
                    raise
            return output
        fd = (os.dup(dest.fd) if dest.fd is not None else
              os.open(dest.target, os.O_WRONLY | os.O_CLOEXEC))
    except OSError as error:
        raise exception.InvalidDestination(
            image_href=image_href, path=dest.path,
            reason=destinations.open_error(error))
    return outputs.StreamOutput(fd, dest.path, image_href)


def write_error(path, error, image_href):
    """The exception for a destination that cannot be written.

    :param path: the destination.
    :param error: the OSError.
    :param image_href: the image, for the message.
    :returns: an ImageDownloadFailed naming the path and the reason.
    """
    return exception.ImageDownloadFailed(
        image_href=image_href,
        reason=_('cannot write %(path)s: %(error)s') % {
            'path': path, 'error': os.strerror(error.errno)
            if error.errno else error})


@contextlib.contextmanager
def undefined_on_failure(output, image_href):
    """Turn a failure after the first byte into DestinationUndefined.

    :param output: the :class:`~ironic_images.sink.outputs.Output` being
        written in place.
    :param image_href: the image, for messages.
    :raises: DestinationUndefined (of the family of the error) when the
        block raised after ``output`` was touched; ImageDownloadFailed for
        an OSError before; what the block raised otherwise.
    """
    try:
        yield output
    except (exception.IronicImagesException, OSError) as error:
        if isinstance(error, OSError):
            error = write_error(output.path, error, image_href)
        if output.touched:
            raise exception.destination_undefined(
                error, output.path, image_href) from error
        raise error


@contextlib.contextmanager
def _source_fd(source):
    if isinstance(source, str):
        with open(source, 'rb', buffering=0) as src:
            yield src.fileno()
    else:
        yield source.fileno()


def copy_file(source, output):
    """Copy a file onto an output, its holes as the output makes them.

    Only the data extents are read (``SEEK_DATA``/``SEEK_HOLE``); a hole
    is left to the output (zeroed on a device, written as zeros to a
    stream). The output is finished at the file's length and synced.

    :param source: the file to copy: a path, or a file object open on it
        (read with ``pread``: its position does not matter).
    :param output: an :class:`~ironic_images.sink.outputs.Output`.
    :returns: the file's length.
    :raises: OSError; ImageUnacceptable when it does not fit the device.
    """
    with _source_fd(source) as fd:
        size = os.fstat(fd).st_size
        buf = bytearray(_COPY_CHUNK)
        for start, end in fileutils.data_extents(fd, size):
            while start < end:
                count = os.preadv(fd, [memoryview(buf)[:min(
                    end - start, _COPY_CHUNK)]], start)
                if not count:
                    raise OSError(errno.EIO, 'the source shrank while it '
                                  'was copied')
                output.pwrite(memoryview(buf)[:count], start)
                start += count
    output.finish(size)
    output.sync()
    return size


def copy_to(source, path, image_href=None):
    """Copy a local image file to any destination.

    A regular file is written atomically (sparse); a device or stream in
    place (see :func:`copy_file`).

    :param source: the file to copy: a path or a file object open on it.
    :param path: the destination.
    :param image_href: the image, for messages.
    :raises: InvalidDestination, ImageUnacceptable (too large for the
        device), ImageDownloadFailed, DestinationUndefined.
    """
    dest = destinations.classify(path, image_href)
    if dest.is_file:
        try:
            part = fileutils.part_path(dest.target)
            try:
                with open(part, 'r+b', buffering=0) as out:
                    copy_file(source, outputs.FileOutput(out.fileno(), part))
                fileutils.commit(part, dest.target)
            except BaseException:
                fileutils.remove_quietly(part)
                raise
        except OSError as error:
            raise write_error(path, error, image_href)
        return
    with _source_fd(source) as fd:
        size = os.fstat(fd).st_size
    output = open_output(dest, image_href, size)
    try:
        with undefined_on_failure(output, image_href):
            copy_file(source, output)
    finally:
        output.close()


@contextlib.contextmanager
def open_destination(path, image_href=None, size=None):
    """A binary file object to download an image's bytes into, as served.

    A regular file is written atomically
    (:func:`ironic_images.common.fileutils.atomic_write`, which a file://
    driver may hardlink into). A device or a stream gets an
    :class:`~ironic_images.sink.image_sink.ImageSink` that writes in place
    (no decompression, no inspection), finished and synced when the block
    ends.

    :param path: the destination.
    :param image_href: the image, for messages.
    :param size: the image's size when known: a device smaller than it
        is refused before the first byte.
    :returns: a context manager yielding the file object.
    :raises: InvalidDestination, ImageUnacceptable (device too small),
        ImageDownloadFailed; DestinationUndefined once a device or stream
        was written.
    """
    dest = destinations.classify(path, image_href)
    if dest.is_file:
        try:
            with fileutils.atomic_write(dest.target) as image_file:
                yield image_file
        except OSError as error:
            raise write_error(path, error, image_href)
        return
    output = open_output(dest, image_href, size)
    try:
        with undefined_on_failure(output, image_href):
            sink = image_sink.ImageSink(output, image_href, decompress=False)
            yield sink
            sink.finish()
            output.sync()
    finally:
        output.close()
