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

"""The ``cache list|clean|fetch`` sub-commands: the master-image cache.

They work on the cache of ``[image_cache]master_path``, with its size cap
and TTL, as a service sharing that directory would.
"""

import datetime
import json
import sys

from oslo_utils import units

from ironic_images.cmd import commands
from ironic_images.cmd import progress
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import image_cache

_LIST_ROW = '%-10s %-6s %-19s %-7s %s'


def _mib(size):
    return '%.1f' % (size / units.Mi) if size is not None else '-'


def _when(epoch):
    return datetime.datetime.fromtimestamp(epoch).strftime(
        '%Y-%m-%d %H:%M:%S')


def cache_list():
    """Print the master images, least recently used first."""
    # A sidecar holds a masked href; one written by hand might not.
    masters = masking.mask_hrefs_in(image_cache.ImageCache().list())
    if CONF.command.json:
        json.dump(masters, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write('\n')
        return
    sys.stdout.write(_LIST_ROW % ('MiB', 'in use', 'last used', 'format',
                                  'image') + '\n')
    for master in masters:
        sys.stdout.write(_LIST_ROW % (
            _mib(master['allocated']), 'yes' if master['in_use'] else 'no',
            _when(master['last_used']), master['format'] or '-',
            (master['href'] or master['name'])
            + (' [raw]' if master['name'].endswith(image_cache.RAW_SUFFIX)
               else '')) + '\n')
    total = sum(master['allocated'] for master in masters)
    sys.stdout.write('%d master(s), %s MiB in %s\n' % (
        len(masters), _mib(total), CONF.image_cache.master_path))


def cache_clean():
    """Evict unused masters: expired ones, then down to the size cap."""
    amount = CONF.command.amount
    if amount is not None and amount < 0:
        raise commands.UsageError('--amount must not be negative')
    freed = image_cache.ImageCache().clean_up(
        amount * units.Mi if amount is not None else None)
    sys.stderr.write('Freed %s MiB in %s\n'
                     % (_mib(freed), CONF.image_cache.master_path))


def cache_fetch():
    """Put an image at a path, through the cache."""
    args = CONF.command
    path = commands.check_destination(args.dest)
    bar = progress.Progress()
    try:
        result = image_cache.ImageCache().fetch_image(
            args.href, path, force_raw=args.raw,
            expected_format=args.format, expected_checksum=args.checksum,
            expected_checksum_algo=args.checksum_algo,
            progress=bar if bar.enabled else None)
    finally:
        bar.close()
    if result.master is None:
        how = 'not cached'
    else:
        how = 'cache hit' if result.hit else 'downloaded'
    sys.stderr.write('Wrote %s (%s, %s)\n' % (args.dest, result.format, how))


def add_parsers(subparsers):
    """Register ``cache`` and its ``list``, ``clean`` and ``fetch``.

    :param subparsers: the argparse sub-parsers action.
    """
    cache = subparsers.add_parser(
        'cache', help='The master-image cache of [image_cache]master_path.')
    actions = cache.add_subparsers(title='Cache commands',
                                   dest='cache_command', metavar='ACTION')
    actions.required = True

    parser = actions.add_parser(
        'list', help='List the master images, least recently used first.')
    parser.add_argument('--json', action='store_true', help='Print JSON.')
    parser.set_defaults(func=cache_list)

    parser = actions.add_parser(
        'clean', help='Evict unused masters: those unused for longer than '
        '[image_cache]ttl_minutes, then the least recently used down to '
        '[image_cache]size_mb.')
    parser.add_argument('--amount', type=int, metavar='MIB',
                        help='Also free at least this many MiB, if unused '
                        'masters allow.')
    parser.set_defaults(func=cache_clean)

    parser = actions.add_parser(
        'fetch', help='Put an image at DEST through the cache: a hardlink '
        'to its master, downloaded once.')
    commands.add_fetch_arguments(parser)
    parser.add_argument('--raw', action='store_true',
                        help='Cache and hand out the image converted to '
                        'raw.')
    parser.set_defaults(func=cache_fetch)
