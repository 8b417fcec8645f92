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

"""The ``fetch``, ``inspect`` and ``convert`` sub-commands."""

import json
import os
import sys

from ironic_images.cmd import commands
from ironic_images.cmd import progress
from ironic_images.conf import CONF
from ironic_images import image_utils
from ironic_images import inspection


def _check_destination(dest):
    if os.path.isdir(dest):
        raise commands.UsageError(
            '%s is a directory; give the file to write' % dest)
    if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        raise commands.UsageError('the directory of %s does not exist'
                                  % dest)


def fetch():
    """Fetch an image to a file: verified, decompressed, inspected."""
    args = CONF.command
    _check_destination(args.dest)
    fetcher = image_utils.fetch_to_raw if args.raw else image_utils.fetch
    bar = progress.Progress()
    try:
        fetched = fetcher(None, args.href, args.dest,
                          checksum=args.checksum,
                          checksum_algo=args.checksum_algo,
                          expected_format=args.format,
                          progress=bar if bar.enabled else None)
    finally:
        bar.close()
    details = [fetched.format]
    if fetched.compression:
        details.append('decompressed from %s' % fetched.compression)
    if fetched.checksum:
        details.append('verified %s' % fetched.checksum)
    sys.stderr.write('Wrote %s (%s)\n' % (args.dest, ', '.join(details)))


def inspect():
    """Print what an image is and whether it passes the safety checks."""
    args = CONF.command
    report = inspection.report(args.image, expected_format=args.format)
    if args.json:
        json.dump(report, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write('\n')
    else:
        for key in ('image', 'format', 'virtual_size', 'size'):
            sys.stdout.write('%-13s %s\n' % (key + ':', report.get(key)))
        for check in report['checks']:
            sys.stdout.write('%-13s %s%s\n' % (
                'check:', check['name'],
                ': ok' if check['passed'] else ': FAILED, %s'
                % check['reason']))
        sys.stdout.write('%-13s %s\n' % ('verdict:', report['verdict']))
    if report['verdict'] != 'accepted':
        # A refused image is an answer, not an error: exit 1 so scripts
        # can branch on it.
        raise SystemExit(1)


def convert():
    """Convert a local image, after the safety checks pass."""
    args = CONF.command
    _check_destination(args.dest)
    if not os.path.isfile(args.source):
        raise commands.UsageError('%s is not a file' % args.source)
    detected = inspection.inspect_file(args.source, args.source)
    src_format = inspection.check_image(detected, args.source, args.format)
    image_utils.convert_image(args.source, args.dest, args.out_format,
                              src_format, out_subformat=args.subformat,
                              image_href=args.source)
    sys.stderr.write('Wrote %s (%s from %s)\n'
                     % (args.dest, args.out_format, src_format))


def add_parsers(subparsers):
    """Register ``fetch``, ``inspect`` and ``convert``.

    :param subparsers: the argparse sub-parsers action.
    """
    parser = subparsers.add_parser(
        'fetch', help='Fetch an image to a file: verified, decompressed '
        '(zstd, gzip, xz), inspected, optionally converted to raw.')
    parser.add_argument('href', help='The image reference.')
    parser.add_argument('dest', help='The file to write.')
    parser.add_argument('--raw', action='store_true',
                        help='Convert to raw when it is not.')
    parser.add_argument('--checksum',
                        help='Expected checksum of the bytes served: '
                        'ALGO:HEX, bare hex or a checksum file URL.')
    parser.add_argument('--checksum-algo',
                        help='Algorithm of a bare-hex --checksum.')
    parser.add_argument('--format',
                        help='The declared disk format; the image must '
                        'match it.')
    parser.set_defaults(func=fetch)

    parser = subparsers.add_parser(
        'inspect', help='Print the format, virtual size and safety verdict '
        'of an image file; exit 1 when it would be refused.')
    parser.add_argument('image', help='The image file.')
    parser.add_argument('--format', help='The declared disk format.')
    parser.add_argument('--json', action='store_true',
                        help='Print JSON.')
    parser.set_defaults(func=inspect)

    parser = subparsers.add_parser(
        'convert', help='Convert a local image with qemu-img, after the '
        'safety checks.')
    parser.add_argument('source', help='The image file.')
    parser.add_argument('dest', help='The file to write.')
    parser.add_argument('-O', dest='out_format', required=True,
                        choices=['raw', 'qcow2', 'vmdk', 'vpc', 'vhd',
                                 'vhdx'],
                        help='The output format.')
    parser.add_argument('-f', '--format',
                        help='The declared source format; it must match.')
    parser.add_argument('--subformat',
                        help='qemu-img subformat (vmdk: monolithicSparse, '
                        'streamOptimized; vhd/vhdx: dynamic, fixed).')
    parser.set_defaults(func=convert)
