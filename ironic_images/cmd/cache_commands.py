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
import time

from oslo_utils import units

from ironic_images.cmd import commands
from ironic_images.cmd import output
from ironic_images.cmd import parser
from ironic_images.cmd import progress
from ironic_images.cmd import sources
from ironic_images.common import masking
from ironic_images import image_cache

_LIST_ROW = '%-10s %-6s %-19s %-7s %s'


def _mib(size):
    return '%.1f' % (size / units.Mi) if size is not None else '-'


def _when(epoch):
    return datetime.datetime.fromtimestamp(epoch).strftime(
        '%Y-%m-%d %H:%M:%S')


def _ago(seconds):
    minutes = int(seconds // 60)
    if minutes < 120:
        return '%d min' % minutes
    return '%.1f h' % (seconds / 3600)


def cache_list(args):
    """List the master images, least recently used first."""
    cache = image_cache.ImageCache()
    masters = cache.list()
    for master in masters:
        # A sidecar holds a masked href; one written by hand might not.
        if master.get('href'):
            master['href'] = masking.mask_href(master['href'])
    lines = [_LIST_ROW % ('MiB', 'in use', 'last used', 'format', 'image')]
    for master in masters:
        lines.append(_LIST_ROW % (
            _mib(master['allocated']), 'yes' if master['in_use'] else 'no',
            _when(master['last_used']), master['format'] or '-',
            (master['href'] or master['name'])
            + (' [raw]' if master['name'].endswith(image_cache.RAW_SUFFIX)
               else '')))
    total = sum(master['allocated'] for master in masters)
    lines.append('%d master(s), %s MiB in %s' % (
        len(masters), _mib(total), cache.master_dir))
    return output.Result(rows=masters, text=lines)


def _why_kept(masters, freed_names, cache):
    """Say why the masters left were not evicted."""
    left = [m for m in masters if m['name'] not in freed_names]
    if not left:
        return []
    in_use = [m for m in left if m['in_use']]
    now = time.time()
    recent = [m for m in left if not m['in_use']]
    reasons = []
    if in_use:
        reasons.append('%d in use (linked to a destination)' % len(in_use))
    if recent:
        newest = min(now - m['last_used'] for m in recent)
        reasons.append('%d unused, the most recent used %s ago (they '
                       'expire after %s)' % (
                           len(recent), _ago(newest),
                           _ago(cache.cache_ttl)))
    total = sum(m['allocated'] for m in left)
    reasons.append('%s MiB kept, under the %s MiB cap' % (
        _mib(total), _mib(cache.cache_size)))
    return reasons


def cache_clean(args):
    """Evict unused masters: expired ones, then down to the size cap."""
    amount = args.amount
    if amount is not None and amount < 0:
        raise parser.UsageError('--amount must not be negative')
    cache = image_cache.ImageCache()
    before = cache.list()
    freed = cache.clean_up(amount * units.Mi if amount is not None
                           else None)
    after = {master['name'] for master in cache.list()}
    evicted = sorted(m['name'] for m in before if m['name'] not in after)
    fields = {'master_path': cache.master_dir, 'freed': freed,
              'evicted': evicted, 'masters': len(before),
              'kept': len(before) - len(evicted)}
    line = 'Freed %s MiB in %s' % (_mib(freed), cache.master_dir)
    if not before:
        line += ': the cache is empty'
    else:
        line += ': %d of %d master(s) evicted' % (
            len(evicted), len(before))
        reasons = _why_kept(before, set(evicted), cache)
        if reasons:
            line += '; ' + '; '.join(reasons)
    return output.Result(fields, [line])


def cache_fetch(args):
    """Put an image at a path, through the cache."""
    dest = commands.check_destination(args.dest)
    with sources.open_image(args.image, args, args.overrides) as source, \
            progress.Progress(labels=(None, 'converting')) as bar:
        result = image_cache.ImageCache().fetch_image(
            source.href, dest, force_raw=args.raw,
            expected_format=args.disk_format,
            expected_checksum=args.checksum,
            expected_checksum_algo=args.checksum_algo,
            image_auth_data=source.auth_data, progress=bar.callback(),
            cpu_arch=args.arch)
    if result.master is None:
        how = 'not cached: %s' % result.reason
        cached = 'no'
    elif result.converted:
        how, cached = 'converted from the cached master', 'converted'
    elif result.hit:
        how, cached = 'cache hit', 'hit'
    else:
        how, cached = 'downloaded into the cache', 'downloaded'
    fields = {'dest': args.dest, 'format': result.format, 'size': result.size,
              'virtual_size': result.virtual_size,
              'checksum': result.checksum, 'master': result.master,
              'cached': cached, 'reason': result.reason}
    return output.Result(fields, ['Wrote %s (%s, %s)' % (
        args.dest, result.format, how)])
