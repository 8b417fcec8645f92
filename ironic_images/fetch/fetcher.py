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

"""Fetching: from an href to a verified, inspected image on disk.

:func:`fetch` resolves the href through its driver's contract, downloads
into an :class:`~ironic_images.sink.image_sink.ImageSink` in a temp file
beside the destination (hashed, decompressed, the disk taken out of a tar
archive, inspected and written sparse in one pass), checks the
inspector's verdict with the safety gate, then fsyncs the file and
renames it into place. :func:`fetch_to_raw` writes a
qcow2 as a raw disk while it arrives; any other format is converted by
qemu-img, which reads the fetched file once. On any failure nothing is
left at the destination.

A destination that is a block device or a stream (a pipe, standard
output) is written in place instead, through a temp file in
``[DEFAULT]tempdir`` only where it must be
(:mod:`ironic_images.fetch.targets`): the safety gate and the size checks
pass before its first byte changes; a failure after that raises
:class:`~ironic_images.exception.DestinationUndefined`.
"""

import contextlib
import dataclasses
import os
import tempfile
import typing

from oslo_utils import units

from ironic_images._i18n import _
from ironic_images.common import destinations
from ironic_images.common import fileutils
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.fetch import download
from ironic_images.fetch import targets
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.formats import names as formats
from ironic_images.image_service import base as service_base
from ironic_images.qemu import convert as qemu_convert
from ironic_images.qemu import info as qemu_info
from ironic_images.sink import destination

Progress = typing.Callable[[int, typing.Optional[int]], None]


@dataclasses.dataclass(frozen=True)
class FetchRequest:
    """What a caller asked to fetch, parsed once and passed down whole.

    :ivar context: the request context (Glance), or None.
    :ivar image_href: the image reference.
    :ivar path: the destination file.
    :ivar checksum: expected checksum (``algo:hex``, bare hex or the URL
        of a checksum file), or None.
    :ivar checksum_algo: the algorithm of a bare-hex ``checksum``.
    :ivar expected_format: the declared disk format, or None.
    :ivar image_auth_data: credentials for drivers that take them.
    :ivar progress: ``progress(done, total)`` callable, or None.
    :ivar cpu_arch: the architecture to pick from an OCI index, or None.
    :ivar service: the driver to fetch with, or None for the one
        :func:`~ironic_images.image_service.get_image_service` gives for
        ``image_href``: for a host that hands in its own image service,
        adapted to the driver contract.
    """

    context: typing.Any
    image_href: str
    path: str
    checksum: typing.Optional[str] = None
    checksum_algo: typing.Optional[str] = None
    expected_format: typing.Optional[str] = None
    image_auth_data: typing.Optional[dict] = None
    progress: typing.Optional[Progress] = None
    cpu_arch: typing.Optional[str] = None
    service: typing.Optional[service_base.BaseImageService] = None


class FetchedImage:
    """An image fetched to disk, verified and inspected.

    :ivar path: where it is.
    :ivar size: its size in bytes (after decompression).
    :ivar format: the format of the file at ``path`` (oslo names: raw,
        qcow2, vmdk, vhd, vhdx, gpt, iso, ...).
    :ivar source_format: the format the image was fetched in, as the
        safety gate settled it; differs from ``format`` once the image is
        converted.
    :ivar virtual_size: the disk size it describes, in bytes, or None.
    :ivar checksum: ``algo:hex`` the transfer verified, or None.
    :ivar compression: ``zstd``, ``gzip``, ``xz`` or None.
    :ivar properties: what the driver's ``show()`` said, or None.
    :ivar href: the href downloaded (an ``oci://`` tag resolved to its
        manifest digest).
    :ivar member: the path of the image inside the tar archive it came
        in (a container layer), or None.
    """

    def __init__(self, path, size, format, virtual_size, checksum,
                 compression, properties):
        self.path = path
        self.size = size
        self.format = format
        self.source_format = format
        self.virtual_size = virtual_size
        self.checksum = checksum
        self.compression = compression
        self.properties = properties
        self.href = None
        self.member = None

    def __repr__(self):
        return ('FetchedImage(path=%r, format=%r, size=%r, '
                'virtual_size=%r, checksum=%r, compression=%r)'
                % (self.path, self.format, self.size, self.virtual_size,
                   self.checksum, self.compression))


def check_available_space(path: str, required_bytes: typing.Optional[int],
                          image_href: str) -> None:
    """Check a file system has room for ``required_bytes``.

    A block device has room for what fits in it; a stream is not
    checked.

    :param path: the destination file, or its directory.
    :param required_bytes: the bytes needed; None or 0 checks nothing.
    :param image_href: the image, for the message.
    :raises: InsufficientDiskSpace naming what is needed and what is free;
        ImageUnacceptable when a block device is smaller than
        ``required_bytes``; ImageDownloadFailed when the file system
        cannot be queried.
    """
    if not required_bytes:
        return
    if not os.path.isdir(path):
        dest = destinations.classify(path, image_href)
        if dest.in_place:
            if dest.kind == destinations.BLOCK:
                destinations.check_fits(
                    dest.path, required_bytes,
                    destinations.device_size(dest, image_href), image_href)
            return
    directory = path if os.path.isdir(path) else (
        os.path.dirname(os.path.abspath(path)))
    try:
        stat = os.statvfs(directory)
    except OSError as error:
        raise exception.ImageDownloadFailed(
            image_href=image_href,
            reason=_('cannot check the free space of %(dir)s: %(error)s')
            % {'dir': directory, 'error': os.strerror(error.errno)})
    free = stat.f_bavail * stat.f_frsize
    if free < required_bytes:
        raise exception.InsufficientDiskSpace(
            path=directory, image_href=image_href,
            required_mib=-(-required_bytes // units.Mi),
            free_mib=free // units.Mi)


def fetch(context: typing.Any, image_href: str, path: str,
          checksum: typing.Optional[str] = None,
          checksum_algo: typing.Optional[str] = None,
          expected_format: typing.Optional[str] = None,
          image_auth_data: typing.Optional[dict] = None,
          progress: typing.Optional[Progress] = None,
          cpu_arch: typing.Optional[str] = None,
          service: typing.Optional[service_base.BaseImageService] = None
          ) -> FetchedImage:
    """Download an image to ``path``: verified, decompressed, inspected.

    In one pass over the bytes: the checksum (and the digest or hash the
    source declares) is verified, zstd/gzip/xz is decompressed (capped by
    ``[download]max_decompressed_size``), the format inspector is fed and
    all-zero blocks are left as holes. The file is then checked
    (:func:`ironic_images.formats.gate.check_image`), fsynced and renamed
    to ``path``; on any failure nothing is left at ``path``. A block
    device or a stream at ``path`` is written in place (see
    :mod:`ironic_images.fetch.targets`).

    :param context: the request context (Glance), or None.
    :param image_href: the image: ``file://``, ``http(s)://``, ``oci://``
        (a tag is resolved to one artifact), a Glance UUID, or any scheme
        a driver is installed for.
    :param path: the destination: a file (a symlink is followed), a
        block device, a pipe or a character device.
    :param checksum: expected checksum: ``algo:hex``, bare hex or the URL
        of a checksum file; checked on the bytes as served (compressed).
    :param checksum_algo: the algorithm of a bare-hex ``checksum``.
    :param expected_format: the declared disk format, or None.
    :param image_auth_data: credentials for drivers that take them
        (``oci``: as ``get_image_service_auth_override`` returns), or None.
    :param progress: ``progress(done, total)`` callable, or None.
    :param cpu_arch: for an OCI index: the architecture to pick.
    :param service: the driver to fetch with, or None for the one of
        ``image_href``'s scheme (see :class:`FetchRequest`).
    :returns: a :class:`FetchedImage`.
    :raises: ImageRefValidationFailed, ImageNotFound, ImageNotAuthorized,
        ImageDownloadFailed, ImageChecksumError, InsufficientDiskSpace,
        ImageUnacceptable, InvalidImage, TemporaryFailure,
        InvalidDestination; DestinationUndefined (a subclass of the error
        that stopped it) once a device or stream was written.
    """
    request = FetchRequest(context, image_href, path, checksum,
                           checksum_algo, expected_format, image_auth_data,
                           progress, cpu_arch, service)
    with fetched_part(request, mode=targets.AS_IS) as fetched:
        commit(fetched, path, image_href)
    return fetched


def fetch_to_raw(context: typing.Any, image_href: str, path: str,
                 checksum: typing.Optional[str] = None,
                 checksum_algo: typing.Optional[str] = None,
                 expected_format: typing.Optional[str] = None,
                 image_auth_data: typing.Optional[dict] = None,
                 progress: typing.Optional[Progress] = None,
                 cpu_arch: typing.Optional[str] = None) -> FetchedImage:
    """Fetch an image and leave it at ``path`` as a raw disk.

    A raw (or gpt, iso) image is fetched straight to ``path``, sparse. A
    qcow2 is written as a raw disk while it arrives, once its virtual
    size is checked against the free space
    (:mod:`ironic_images.sink.qcow2_stream`), when its header allows and
    ``[image_convert]stream_qcow2`` is set. Any other permitted format (or
    a qcow2 whose header does not allow it) is checked again by ``qemu-img
    info``, its virtual size checked against the free space, and converted
    with qemu-img; the fetched file is removed. A raw result that looks
    like another format is refused. Onto a block device, a raw image and
    a streamable qcow2 are written in place; another format is converted
    from a temp file in ``[DEFAULT]tempdir`` with ``qemu-img convert -n``.

    :param context: as :func:`fetch`; so are the other parameters.
    :returns: a :class:`FetchedImage` whose ``format`` is the raw-like
        format (``raw``, ``gpt``, ``iso``).
    :raises: as :func:`fetch`, and ImageConvertFailed.
    """
    request = FetchRequest(context, image_href, path, checksum,
                           checksum_algo, expected_format, image_auth_data,
                           progress, cpu_arch)
    with fetched_part(request, to_raw=CONF.image_convert.stream_qcow2,
                      write_behind='raw', mode=targets.RAW) as fetched:
        if fetched.format in formats.DISK_FORMATS:
            commit(fetched, path, image_href)
        else:
            convert_fetched(fetched, path, 'raw', image_href,
                            progress=progress)
            fetched.format = 'raw'
    return fetched


def convert_fetched(fetched, dest, out_format, image_href,
                    out_subformat=None, progress=None):
    """Convert a fetched image with qemu-img, after ``qemu-img info``.

    :param fetched: a :class:`FetchedImage` that passed the safety gate.
    :param dest: the output path; ``fetched`` then describes it.
    :param out_format: the qemu-img output format.
    :param image_href: the image, for messages.
    :param out_subformat: a qemu-img ``subformat``, or None.
    :param progress: ``progress(done, total)`` of the conversion, or None.
    :raises: InsufficientDiskSpace, ImageConvertFailed, InvalidImage.
    """
    src_format = formats.qemu_name(fetched.format)
    info = qemu_info.qemu_img_info(fetched.path, src_format, image_href)
    target = destinations.classify(dest, image_href)
    if target.is_file or (target.kind == destinations.BLOCK
                          and formats.qemu_name(out_format) == 'raw'):
        check_available_space(dest, info.virtual_size, image_href)
    else:
        # Converted in a temp file, then copied: a stream cannot seek,
        # and qemu-img cannot create another format on a device.
        check_available_space(CONF.tempdir or tempfile.gettempdir(),
                              info.virtual_size, image_href)
    qemu_convert.convert_image(fetched.path, dest, out_format, src_format,
                               out_subformat=out_subformat,
                               image_href=image_href, source_info=info,
                               progress=progress)
    fetched.virtual_size = info.virtual_size
    fetched.size = (os.stat(target.target).st_size if target.is_file
                    else info.virtual_size)
    fetched.path = target.target


@contextlib.contextmanager
def fetched_part(request, to_raw=False, write_behind=True,
                 mode=targets.AS_IS, volume_size=None):
    """Fetch into a temp file beside the destination, through the gate.

    A block device or a stream is written in place where ``mode`` allows
    (see :mod:`ironic_images.fetch.targets`): the image is then at the
    destination already, and :func:`commit` only checks that.

    :param request: a :class:`FetchRequest`.
    :param to_raw: let a qcow2 arrive written as a raw disk (its
        ``format`` is then ``raw``).
    :param write_behind: as :class:`~ironic_images.sink.image_sink.ImageSink`
        has it: True when the file is kept as it comes, ``'raw'`` when only
        a raw one is, False when a conversion reads it back.
    :param mode: for a device or a stream: what the caller leaves there,
        :data:`~ironic_images.fetch.targets.AS_IS`,
        :data:`~ironic_images.fetch.targets.RAW` or
        :data:`~ironic_images.fetch.targets.CONVERT`.
    :param volume_size: a size in GiB the disk must fit before it is
        written in place, or None.
    :returns: a context manager yielding a :class:`FetchedImage` at the
        temp file (or the destination), which is removed unless the
        caller moved it away.
    :raises: as :func:`fetch`.
    """
    with _unchecked_part(request, to_raw, write_behind, mode,
                         volume_size) as (fetched, result):
        fetched.format = gate.check_image(
            result.detected, fetched.href, request.expected_format)
        fetched.source_format = fetched.format
        if result.converted:
            qemu_convert.check_output(fetched.path, result.converted, None,
                                      fetched.href)
            fetched.format = result.converted
            # The disk as written: qemu's size, whole sectors, where the
            # inspector reports the header's field.
            fetched.virtual_size = result.size
        yield fetched


@contextlib.contextmanager
def _unchecked_part(request, to_raw=False, write_behind=True,
                    mode=targets.AS_IS, volume_size=None, gated=True):
    with download.downloaded(request, check_available_space, to_raw,
                             write_behind, mode, volume_size,
                             gated) as done:
        fetched = FetchedImage(done.path, done.result.size, None,
                               done.result.detected.virtual_size,
                               done.checksum, done.result.compression,
                               done.properties)
        fetched.href = done.href
        fetched.member = done.result.member
        yield fetched, done.result


def fetch_unchecked(context: typing.Any, image_href: str, path: str,
                    checksum: typing.Optional[str] = None,
                    checksum_algo: typing.Optional[str] = None,
                    image_auth_data: typing.Optional[dict] = None,
                    progress: typing.Optional[Progress] = None,
                    cpu_arch: typing.Optional[str] = None
                    ) -> typing.Tuple[FetchedImage,
                                      inspection.DetectedImage]:
    """Fetch an image without the safety gate, to report on it.

    Everything :func:`fetch` does except the safety gate: the bytes are
    verified, decompressed and inspected, and written atomically to
    ``path``. Never hand the result to qemu-img; pass the returned
    detection to :func:`ironic_images.formats.gate.check_image` first.

    :param context: as :func:`fetch`; so are the other parameters.
    :returns: a tuple of a :class:`FetchedImage` (``format`` None) and the
        :class:`ironic_images.formats.inspection.DetectedImage`.
    :raises: as :func:`fetch`, except the safety gate's refusals.
    """
    request = FetchRequest(context, image_href, path, checksum,
                           checksum_algo, None, image_auth_data, progress,
                           cpu_arch)
    with _unchecked_part(request, gated=False) as (fetched, result):
        commit(fetched, path, image_href)
    return fetched, result.detected


def commit(fetched, dest, image_href):
    """fsync a fetched temp file and rename it to its destination.

    Only a file that is kept is synced: one that only feeds a conversion
    is read from the page cache and removed, and syncing it would cost a
    second write of the whole image (and, on a discard-mounted disk, a
    synchronous trim when it is removed). A device or a stream that the
    image was written onto in place is left as it is (synced already); a
    temp file made for one is copied onto it.

    :param fetched: a :class:`FetchedImage`; it then describes ``dest``.
    :param dest: the destination.
    :param image_href: the image, for messages.
    :raises: ImageDownloadFailed; DestinationUndefined when a copy onto a
        device or a stream fails after its first byte.
    """
    target = destinations.classify(dest, image_href)
    if target.in_place:
        if fetched.path != target.target:
            destination.copy_to(fetched.path, dest, image_href)
            fetched.path = target.target
        return
    try:
        fd = os.open(fetched.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        fileutils.commit(fetched.path, dest)
    except OSError as error:
        raise destination.write_error(dest, error, image_href)
    fetched.path = dest


def fetch_verify_image(context: typing.Any, image_href: str, dest: str,
                       size: typing.Optional[int] = None,
                       **kwargs: typing.Any) -> FetchedImage:
    """Fetch an image without converting it, refusing one too large.

    :param context: as :func:`fetch`.
    :param image_href: as :func:`fetch`.
    :param dest: the destination file.
    :param size: the volume size in GiB the image must fit, or None.
    :param kwargs: the other keyword arguments of :func:`fetch`.
    :returns: a :class:`FetchedImage`.
    :raises: as :func:`fetch`; ImageUnacceptable when the virtual size
        exceeds ``size``.
    """
    request = FetchRequest(context, image_href, dest, **kwargs)
    with fetched_part(request) as fetched:
        if size is not None and fetched.virtual_size:
            gate.check_virtual_size(fetched.virtual_size, size, image_href)
        commit(fetched, dest, image_href)
    return fetched
