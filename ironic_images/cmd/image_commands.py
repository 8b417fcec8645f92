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
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.formats import names as formats
from ironic_images import image_utils


def fetch():
    """Fetch an image to a file: verified, decompressed, inspected."""
    args = CONF.command
    path = commands.check_destination(args.dest)
    fetcher = image_utils.fetch_to_raw if args.raw else image_utils.fetch
    bar = progress.Progress()
    try:
        fetched = fetcher(None, args.href, path,
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


# The safety gate's stages, in the order check_image runs them, and the
# check names (exception kwargs['check']) each stage may fail with.
def _report(name, fetched, detected, expected_format):
    """Run the safety gate and say what each stage of it decided."""
    failed_stage = reason = None
    try:
        fmt = gate.check_image(detected, name, expected_format)
        verdict = 'accepted'
    except exception.ImageUnacceptable as error:
        fmt = detected.format
        check = error.kwargs.get('check')
        failed_stage, reason = gate.stage_of(check), str(error)
        verdict = 'refused: %s check failed' % check
    checks = []
    reached = True
    for stage, _names in gate.STAGES:
        if stage == 'vmdk' and detected.format != 'vmdk':
            continue
        if stage == 'format_match' and not expected_format:
            continue
        status = 'passed' if reached else 'not checked'
        if stage == failed_stage:
            status, reached = 'failed', False
        checks.append({'name': stage, 'status': status,
                       'reason': reason if status == 'failed' else None})
    return {'image': name, 'format': fmt, 'matches': list(detected.matches),
            'virtual_size': detected.virtual_size,
            'size': fetched.size if fetched else detected.data_size,
            'compression': fetched.compression if fetched else None,
            'checksum': fetched.checksum if fetched else None,
            'checks': checks, 'verdict': verdict}


def inspect():
    """Print what an image is and whether it passes the safety checks."""
    args = CONF.command
    if os.path.isfile(args.image):
        report = _report(args.image, None,
                         inspection.inspect_file(args.image, args.image),
                         args.format)
    else:
        with image_utils.temporary_dir() as scratch:
            fetched, detected = image_utils.fetch_unchecked(
                None, args.image, os.path.join(scratch, 'image'),
                checksum=args.checksum, checksum_algo=args.checksum_algo)
            report = _report(args.image, fetched, detected, args.format)
    report = masking.mask_hrefs_in(report)
    if args.json:
        json.dump(report, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write('\n')
    else:
        _print_report(report)
    if report['verdict'] != 'accepted':
        # A refused image is an answer, not an error: exit 1 so scripts
        # can branch on it.
        raise SystemExit(1)


def _print_report(report):
    for key in ('image', 'format', 'virtual_size', 'size', 'compression',
                'checksum'):
        if report[key] is not None:
            sys.stdout.write('%-14s %s\n' % (key + ':', report[key]))
    for check in report['checks']:
        line = '%-14s %-18s %s' % ('check:', check['name'], check['status'])
        if check['reason']:
            line += ' (%s)' % check['reason']
        sys.stdout.write(line + '\n')
    sys.stdout.write('%-14s %s\n' % ('verdict:', report['verdict']))


def convert():
    """Convert a local image, after the safety checks pass."""
    args = CONF.command
    path = commands.check_destination(args.dest)
    if not os.path.isfile(args.source):
        raise commands.UsageError('%s is not a file' % args.source)
    detected = inspection.inspect_file(args.source, args.source)
    src_format = gate.check_image(detected, args.source, args.format)
    image_utils.convert_image(args.source, path, args.out_format,
                              formats.qemu_name(src_format),
                              out_subformat=args.subformat,
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
    commands.add_fetch_arguments(parser)
    parser.add_argument('--raw', action='store_true',
                        help='Convert to raw when it is not.')
    parser.set_defaults(func=fetch)

    parser = subparsers.add_parser(
        'inspect', help='Print the format, virtual size and the verdict of '
        'each safety check of an image file or href; exit 1 when it would '
        'be refused.')
    parser.add_argument('image', help='An image file, or an href (the '
                        'image is downloaded to a temp dir, inspected, '
                        'removed).')
    parser.add_argument('--format', help='The declared disk format.')
    parser.add_argument('--checksum',
                        help='Expected checksum of an href\'s bytes.')
    parser.add_argument('--checksum-algo',
                        help='Algorithm of a bare-hex --checksum.')
    parser.add_argument('--json', action='store_true',
                        help='Print JSON.')
    parser.set_defaults(func=inspect)

    parser = subparsers.add_parser(
        'convert', help='Convert a local image with qemu-img, after the '
        'safety checks.')
    parser.add_argument('source', help='The image file.')
    parser.add_argument('dest', help=commands.DEST_HELP)
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
