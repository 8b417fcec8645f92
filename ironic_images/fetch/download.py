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

"""One download of a fetch: the driver's bytes into an image sink.

:func:`downloaded` resolves the href through the driver's contract and
runs its ``download`` into an
:class:`~ironic_images.sink.image_sink.ImageSink`: for a regular-file
destination, in a temp file beside it; for a block device or a stream, in
place or through a temp file as
:class:`~ironic_images.fetch.targets.InPlaceTarget` decides. What it
yields has not been through the safety gate.
"""

import collections
import contextlib
import os

from oslo_log import log as logging
from oslo_utils import units

from ironic_images._i18n import _
from ironic_images.common import destinations
from ironic_images.common import fileutils
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.fetch import targets
from ironic_images.formats import inspection
from ironic_images import image_service
from ironic_images.sink import image_sink

LOG = logging.getLogger(__name__)

#: What :func:`downloaded` yields: where the image is (a temp file, or the
#: destination written in place), the sink's result, the checksum the
#: transfer verified, the driver's properties and the href downloaded.
Downloaded = collections.namedtuple(
    'Downloaded', ['path', 'result', 'checksum', 'properties', 'href'])


@contextlib.contextmanager
def downloaded(request, check_space, to_raw=False, write_behind=True,
               mode=targets.AS_IS, volume_size=None, gated=True):
    """Download a fetch request; remove its temp file afterwards.

    :param request: a :class:`~ironic_images.fetch.fetcher.FetchRequest`.
    :param check_space: ``check_space(path, required_bytes, image_href)``,
        raising when ``path`` has no room.
    :param to_raw: as :func:`~ironic_images.fetch.fetcher.fetched_part`;
        so are ``write_behind``, ``mode`` and ``volume_size``.
    :param gated: whether an image written in place passes the safety
        gate first.
    :returns: a context manager yielding a :data:`Downloaded`.
    :raises: as :func:`~ironic_images.fetch.fetcher.fetch`; a failure
        (in the block too) once a device or stream was written raises
        DestinationUndefined.
    """
    service = request.service
    if service is None:
        service = image_service.get_image_service(request.image_href,
                                                  context=request.context)
    if request.image_auth_data is not None and service.is_auth_set_needed:
        service.set_image_auth(request.image_href, request.image_auth_data)
    href, properties = _resolve(service, request)
    size = properties.get('size')
    dest = destinations.classify(request.path, href)
    if dest.in_place:
        with targets.InPlaceTarget(
                dest, href, mode, request.expected_format, size,
                volume_size, gated,
                check_space=lambda path, required: check_space(
                    path, required, href)) as target, \
                target.undefined_on_failure():
            result, checksum = _download(
                service, href, request, properties, None, to_raw=to_raw,
                write_behind=False, spill_dir=target.spill_dir,
                check_space=target.check_space, choose_output=target.choose)
            target.finish()
            yield Downloaded(target.path, result, checksum, properties,
                             href)
        return
    check_space(dest.target, size, href)
    part = _new_part(dest.target, href)
    try:
        with open(part, 'wb', buffering=0) as image_file:
            result, checksum = _download(
                service, href, request, properties, image_file,
                to_raw=to_raw,
                write_behind=write_behind, spill_dir=os.path.dirname(part),
                check_space=lambda required: check_space(
                    part, required, href))
        yield Downloaded(part, result, checksum, properties, href)
    finally:
        fileutils.remove_quietly(part)


def _new_part(path, image_href):
    try:
        return fileutils.part_path(path)
    except OSError as error:
        raise exception.ImageDownloadFailed(
            image_href=image_href,
            reason=_('cannot create a file beside %(path)s: %(error)s')
            % {'path': path, 'error': os.strerror(error.errno)})


def _resolve(service, request):
    """The href to download and its properties, through the contract."""
    resolved = service.resolve(request.image_href, cpu_arch=request.cpu_arch)
    if resolved.href != request.image_href:
        LOG.debug('%(href)s resolves to %(url)s',
                  {'href': masking.mask_href(request.image_href),
                   'url': masking.mask_href(resolved.href)})
    properties = resolved.properties
    if properties is None:
        properties = service.show(resolved.href)
    return resolved.href, properties


def _download(service, href, request, properties, image_file, **sink_args):
    """Download into a sink; the sink's result and checksum.

    :param properties: what the driver's ``show()`` said of ``href``.
    :param image_file: the sink's file (or None with ``choose_output``).
    :param sink_args: more keyword arguments of the sink.
    """
    limit = CONF.download.max_decompressed_size * units.Mi
    progress = request.progress
    driver_progress = {}
    if progress is not None and service.reports_progress:
        driver_progress, progress = {'progress': progress}, None
    try:
        with image_sink.ImageSink(
                image_file, href,
                inspector=inspection.StreamInspector(href),
                max_decompressed_size=limit, progress=progress,
                expected_size=properties.get('size'),
                archive_name=properties.get('digest'), **sink_args) as sink:
            checksum = service.download(
                href, sink, checksum=request.checksum,
                checksum_algo=request.checksum_algo, **driver_progress)
            return sink.finish(), checksum
    except OSError as error:
        raise exception.ImageDownloadFailed(
            image_href=href,
            reason=os.strerror(error.errno) if error.errno else str(error))
