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

"""Where a fetch onto a block device or a stream writes its bytes.

A fetch to a regular file writes a temp file beside it
(:mod:`ironic_images.fetch.fetcher`). A fetch onto a device or a stream
writes in place when it can and through a temp file in
``[DEFAULT]tempdir`` when it must, decided once the format inspector has
seen the first MiB (:class:`InPlaceTarget` is the sink's
``choose_output``):

=====================================  ================  ==================
the image, and what is asked           a block device    a stream
=====================================  ================  ==================
raw, gpt, iso (compressed or not)      in place          in place
qcow2 to raw, its header streamable    decoded in place  decoded to a temp
                                                         file, then copied
any other format to raw; any format    temp file, then   temp file, then
to another volume format               ``qemu-img -n``   converted, copied
any image as it is (``fetch``)         in place          in place
an image the inspector reads to its    temp file, then   temp file, then
end (VMDK streamOptimized, VHDX)       as above          as above
=====================================  ================  ==================

A stream cannot go back, and a qcow2's clusters arrive out of the disk's
order in general, so a qcow2 for a stream is decoded into a temp file
first. Before the first byte is written in place, the safety gate has
passed on the inspector's early verdict and the disk's size (the qcow2
header's, or the declared size of an uncompressed image) is checked
against the device and the volume: a refusal leaves the destination
untouched. A compressed raw image's size is known only at its end: one
larger than the device fails at the device's end, and the device is then
undefined (:class:`~ironic_images.exception.DestinationUndefined`).
"""

import os
import tempfile

from ironic_images.common import destinations
from ironic_images.common import fileutils
from ironic_images.conf import CONF
from ironic_images.formats import gate
from ironic_images.formats import names as formats
from ironic_images.sink import destination
from ironic_images.sink import outputs
from ironic_images.sink import qcow2_stream

#: Write the image as it comes (:func:`~ironic_images.fetch.fetcher.fetch`).
AS_IS = 'as-is'
#: Leave a raw disk (``fetch_to_raw``, a raw volume).
RAW = 'raw'
#: Leave another format: always through a temp file and qemu-img.
CONVERT = 'convert'


class InPlaceTarget:
    """One fetch's destination that is written in place.

    :param dest: the :class:`~ironic_images.common.destinations.Destination`
        (a block device or a stream).
    :param image_href: the image.
    :param mode: :data:`AS_IS`, :data:`RAW` or :data:`CONVERT`.
    :param expected_format: the declared format, for the early gate.
    :param declared_size: the size the source declares, or None.
    :param volume_size: a volume size in GiB the disk must fit, or None.
    :param gated: run the safety gate before writing in place (False
        only for :func:`~ironic_images.fetch.fetcher.fetch_unchecked`).
    :param check_space: ``check_space(path, required_bytes)``, raising
        when a temp file in ``path`` would not fit.
    """

    def __init__(self, dest, image_href, mode, expected_format=None,
                 declared_size=None, volume_size=None, gated=True,
                 check_space=None):
        self.dest = dest
        self._href = image_href
        self._mode = mode
        self._expected_format = expected_format
        self._declared_size = declared_size
        self._volume_size = volume_size
        self._gated = gated
        self._check_space = check_space
        #: The in-place output, once chosen.
        self.output = None
        # A device is opened first, so that one in use or out of reach
        # fails the fetch before the download starts.
        self._device = None
        #: The temp file, once chosen.
        self.temp = None
        self._temp_file = None
        self.spill_dir = CONF.tempdir or tempfile.gettempdir()

    @property
    def path(self):
        """Where the image was written: the destination or the temp file."""
        return self.temp if self.temp is not None else self.dest.target

    @property
    def touched(self):
        """Whether a byte reached the destination."""
        return self.output is not None and self.output.touched

    def choose(self, detected, head, compression):
        """The sink's ``choose_output``: in place or a temp file.

        :raises: what the safety gate raises, ImageUnacceptable when the
            disk does not fit the device or the volume,
            InsufficientDiskSpace for a temp file, InvalidDestination;
            nothing was written then.
        """
        in_place, to_raw, size = self._plan(detected, head, compression)
        if not in_place:
            if self._device is not None:
                # Written later by qemu-img or a copy, which open it.
                self._device.close()
                self._device = None
            return self._open_temp(), to_raw
        if self._gated:
            gate.check_image(detected, self._href, self._expected_format)
        if size is not None and self._volume_size is not None:
            gate.check_virtual_size(size, self._volume_size, self._href)
        if self._device is not None:
            if size is not None:
                self._device.check_fits(size)
            self.output = self._device
        else:
            self.output = destination.open_output(self.dest, self._href)
        return self.output, to_raw

    def _plan(self, detected, head, compression):
        """``(in_place, to_raw, disk_size)`` for what the sink holds."""
        if detected is None or self._mode == CONVERT:
            return False, False, None
        fmt = detected.format
        declared = None if compression else self._declared_size
        if self._mode == AS_IS or fmt in formats.DISK_FORMATS:
            return True, False, declared
        if fmt == 'qcow2' and CONF.image_convert.stream_qcow2:
            header, _why = qcow2_stream.streamable_header(head)
            if header is not None:
                return (self.dest.kind == destinations.BLOCK, True,
                        header.virtual_size)
        return False, False, None

    def check_space(self, virtual_size):
        """The sink's ``check_space`` for a qcow2 written as raw."""
        if self.output is None:
            self._check_space(self.spill_dir, virtual_size)

    def _open_temp(self):
        self._check_space(self.spill_dir, self._declared_size)
        fd, self.temp = tempfile.mkstemp(prefix='ironic-images-fetch-',
                                         suffix='.part', dir=self.spill_dir)
        self._temp_file = os.fdopen(fd, 'r+b', buffering=0)
        return outputs.FileOutput(fd, self.temp)

    def finish(self):
        """After the sink's finish: sync what was written in place."""
        if self.output is not None:
            self.output.sync()

    def undefined_on_failure(self):
        """A context manager: a failure once touched is undefined."""
        return destination.undefined_on_failure(_Touched(self), self._href)

    def open(self):
        """Open a block device now, to fail early when it is in use.

        :raises: InvalidDestination.
        """
        if self.dest.kind == destinations.BLOCK:
            self._device = destination.open_output(self.dest, self._href)

    def close(self):
        """Close the destination and remove the temp file."""
        if self._device is not None:
            self._device.close()
            self._device = None
        elif self.output is not None:
            self.output.close()
        if self._temp_file is not None:
            self._temp_file.close()
            self._temp_file = None
        if self.temp is not None:
            fileutils.remove_quietly(self.temp)

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()


class _Touched:
    """What :func:`undefined_on_failure` asks of the target's output."""

    def __init__(self, target):
        self._target = target

    @property
    def touched(self):
        return self._target.touched

    @property
    def path(self):
        return self._target.dest.path
