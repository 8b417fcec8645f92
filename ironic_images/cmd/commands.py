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

"""The sub-commands of ``ironic-images``."""

import datetime
import json
import os
import sys

from ironic_images.cmd import progress
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import image_service
from ironic_images.sink import destination

#: The destination that stands for standard output.
STDOUT = '-'


class UsageError(Exception):
    """The command line is wrong in a way argparse cannot tell."""


def _json_default(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)


def check_destination(dest):
    """Refuse a destination that is a directory or in a missing one.

    :param dest: the file a command is to write; ``-`` is standard output
        (refused when it is a terminal).
    :returns: the path to write: ``dest``, or ``/proc/self/fd/1`` for
        ``-`` (written through this process's descriptor 1, whatever it
        is open on).
    :raises: UsageError
    """
    if dest == STDOUT:
        if sys.stdout.isatty():
            raise UsageError('standard output is a terminal; redirect it '
                             'or give a file to write')
        sys.stdout.flush()
        return '/proc/self/fd/1'
    if os.path.isdir(dest):
        raise UsageError('%s is a directory; give the file to write' % dest)
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        raise UsageError('the directory of %s does not exist' % dest)
    return dest


def show():
    """Print the properties of an image as JSON."""
    href = CONF.command.href
    properties = image_service.get_image_service(href).show(href)
    # Printed for a person: hrefs masked, as in the logs.
    json.dump(masking.mask_hrefs_in(properties), sys.stdout, indent=2,
              sort_keys=True, default=_json_default)
    sys.stdout.write('\n')


def download():
    """Download an image to a file, atomically, verifying its checksum."""
    href, dest = CONF.command.href, CONF.command.dest
    path = check_destination(dest)
    service = image_service.get_image_service(href)
    bar = progress.Progress()
    # Only a driver that reports progress takes the argument.
    reporting = ({'progress': bar}
                 if bar.enabled and service.reports_progress else {})
    try:
        with destination.open_destination(path, href) as image_file:
            service.download(href, image_file,
                             checksum=CONF.command.checksum,
                             checksum_algo=CONF.command.checksum_algo,
                             **reporting)
    finally:
        bar.close()
    verified = service.transfer_verified_checksum
    sys.stderr.write('Wrote %s%s\n' % (
        dest, ' (verified %s)' % verified if verified else ''))


DEST_HELP = ('Where to write: a file (replaced atomically), a block device '
             '(written in place), a FIFO or a character device, or - for '
             'standard output.')


def add_fetch_arguments(parser):
    """Add what every fetching command takes: HREF, DEST and the checks.

    :param parser: the sub-command's argparse parser.
    """
    parser.add_argument('href', help='The image reference.')
    parser.add_argument('dest', help=DEST_HELP)
    parser.add_argument('--checksum',
                        help='Expected checksum of the bytes served: '
                        'ALGO:HEX, bare hex or a checksum file URL.')
    parser.add_argument('--checksum-algo',
                        help='Algorithm of a bare-hex --checksum.')
    parser.add_argument('--format',
                        help='The declared disk format; the image must '
                        'match it.')


def add_parsers(subparsers):
    """Register the sub-commands (the ``SubCommandOpt`` handler).

    :param subparsers: the argparse sub-parsers action.
    """
    parser = subparsers.add_parser(
        'show', help='Print the properties of an image as JSON.')
    parser.add_argument('href', help='The image reference.')
    parser.set_defaults(func=show)

    parser = subparsers.add_parser(
        'download', help='Download an image to a file, atomically.')
    parser.add_argument('href', help='The image reference.')
    parser.add_argument('dest', help=DEST_HELP)
    parser.add_argument('--checksum',
                        help='Expected checksum: ALGO:HEX or bare hex.')
    parser.add_argument('--checksum-algo',
                        help='Algorithm of a bare-hex --checksum.')
    parser.set_defaults(func=download)
