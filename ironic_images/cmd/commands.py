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

"""The ``show`` and ``download`` sub-commands, and what commands share.

Each command takes the parsed command line and returns an
:class:`ironic_images.cmd.output.Result`. A tag (or an index) is
resolved by the driver contract's ``resolve``, the one place that does
it for every command, as ``fetch`` does.
"""

import os
import stat
import sys

from ironic_images.cmd import output
from ironic_images.cmd import parser
from ironic_images.cmd import progress
from ironic_images.cmd import sources
from ironic_images.common import masking
from ironic_images import image_service
from ironic_images.sink import destination

# The fields of show shown first, in this order; the others follow.
_SHOW_ORDER = ('resolved_from', 'href', 'size', 'disk_format', 'checksum',
               'digest', 'updated_at')


def check_destination(dest):
    """Refuse a destination that is a directory or in a missing one.

    :param dest: the file a command is to write; ``-`` is standard output
        (refused when it is a terminal).
    :returns: the path to write: ``dest``, or ``/proc/self/fd/1`` for
        ``-`` (written through this process's descriptor 1, whatever it
        is open on).
    :raises: UsageError
    """
    if dest == output.STDOUT:
        if sys.stdout.isatty():
            raise parser.UsageError('standard output is a terminal; '
                                    'redirect it or give a file to write')
        sys.stdout.flush()
        return '/proc/self/fd/1'
    if os.path.isdir(dest):
        raise parser.UsageError('%s is a directory; give the file to write'
                                % dest)
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        raise parser.UsageError('the directory of %s does not exist' % dest)
    return dest


def written_size(path):
    """The size of a regular file written, or None for a device or stream.

    :param path: what a command wrote.
    """
    st = os.stat(path)
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def resolve(service, source, cpu_arch):
    """The one image a source names today (an OCI tag resolved).

    :param service: the source's driver.
    :param source: a :class:`~ironic_images.cmd.sources.Source`.
    :param cpu_arch: the architecture to pick from an index, or None.
    :returns: a :class:`~ironic_images.image_service.base.ResolvedImage`.
    """
    if source.auth_data is not None and service.is_auth_set_needed:
        service.set_image_auth(source.href, source.auth_data)
    return service.resolve(source.href, cpu_arch=cpu_arch)


def display_href(source, href):
    """What to call an href in output: the path for a local file."""
    if source.local is not None and href == source.href:
        return source.local
    return masking.mask_href(href)


def show(args):
    """Print the properties of an image; a tag is resolved first."""
    with sources.open_image(args.image, args, args.overrides) as source:
        service = image_service.get_image_service(source.href)
        resolved = resolve(service, source, args.arch)
        properties = resolved.properties
        if properties is None:
            properties = service.show(resolved.href)
    # Printed for a person: hrefs masked, as in the logs.
    fields = masking.mask_hrefs_in(dict(properties))
    fields['href'] = display_href(source, resolved.href)
    if resolved.href != source.href:
        fields['resolved_from'] = display_href(source, source.href)
    return output.Result(fields, output.field_lines(fields, _SHOW_ORDER))


def download(args):
    """Download an image as served, verifying its checksum.

    A regular file is replaced atomically; a device, a FIFO or standard
    output (``-``) is written in place.
    """
    path = check_destination(args.dest)
    with sources.open_image(args.image, args, args.overrides) as source:
        service = image_service.get_image_service(source.href)
        resolved = resolve(service, source, args.arch)
        bar = progress.Progress(labels=('downloading',))
        driver_progress = ({'progress': bar} if bar.enabled
                           and service.reports_progress else {})
        with bar, destination.open_destination(
                path, resolved.href) as image_file:
            verified = service.download(resolved.href, image_file,
                                        checksum=args.checksum,
                                        checksum_algo=args.checksum_algo,
                                        **driver_progress)
    dest = args.dest
    fields = {'dest': dest, 'href': display_href(source, resolved.href),
              'size': written_size(path),
              'checksum': verified}
    details = ([output.human_size(fields['size'])]
               if fields['size'] is not None else [])
    if fields['checksum']:
        details.append('verified %s' % fields['checksum'])
    line = 'Wrote %s' % dest
    if details:
        line += ' (%s)' % ', '.join(details)
    if resolved.href != source.href:
        line += ' from %s' % fields['href']
    return output.Result(fields, [line])
