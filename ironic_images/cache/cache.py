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

"""The master-image cache: one download per image, hardlinked to callers.

:class:`ImageCache` keeps a master copy of each image in a directory,
named from what identifies its content (``glance-ID``,
``oci-sha256-HEX``, else ``url-SHA256(href)``; ``.raw`` when converted),
revalidates it through its driver's contract
(:mod:`ironic_images.cache.masters`), and hardlinks it to each caller's
destination. N callers at once cause one download
(:mod:`ironic_images.cache.locks`); unused masters are evicted by age and
size (:mod:`ironic_images.cache.eviction`). How: the contributor guide's
"The master-image cache inside".
"""

import os
import threading
import time

from oslo_log import log as logging
from oslo_utils import units

from ironic_images._i18n import _
from ironic_images.cache import eviction as cache_eviction
from ironic_images.cache import locks as cache_locks
from ironic_images.cache import masters as cache_masters
from ironic_images.cache import outcomes
from ironic_images.common import fileutils
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.fetch import fetcher
from ironic_images.formats import gate
from ironic_images.formats import names as formats
from ironic_images.image_service import checksum_files

LOG = logging.getLogger(__name__)

RAW_SUFFIX = '.raw'
# Master directories whose crash leftovers this process has removed.
_PREPARED = set()
_PREPARED_LOCK = threading.Lock()


class ImageCache:
    """A directory of master images shared by threads and processes.

    :param master_dir: the cache directory; default
        ``[image_cache]master_path``.
    :param cache_size: the size cap in bytes; default
        ``[image_cache]size_mb``.
    :param cache_ttl: seconds of disuse after which a master expires;
        default ``[image_cache]ttl_minutes``.
    """

    def __init__(self, master_dir=None, cache_size=None, cache_ttl=None):
        # Resolved: the threads of a process tell locks apart by the path
        # of their file, and two names for one file would be two locks.
        self.master_dir = os.path.realpath(
            master_dir or CONF.image_cache.master_path)
        self.cache_size = (CONF.image_cache.size_mb * units.Mi
                           if cache_size is None else cache_size)
        self.cache_ttl = (CONF.image_cache.ttl_minutes * 60
                          if cache_ttl is None else cache_ttl)

    def fetch_image(self, href, dest, ctx=None, force_raw=True,
                    expected_format=None, expected_checksum=None,
                    expected_checksum_algo=None, image_auth_data=None,
                    progress=None, cpu_arch=None):
        """Put an image at ``dest``, from the cache when it can.

        :param href: the image: a Glance UUID or ``glance://``,
            ``oci://`` (a tag is resolved), ``http(s)://``, ``file://`` or
            any enabled scheme.
        :param dest: the destination file; replaced atomically.
        :param ctx: the request context (Glance), or None.
        :param force_raw: cache and hand out the image converted to raw.
        :param expected_format: the declared disk format, or None.
        :param expected_checksum: ``algo:hex``, bare hex or the URL of a
            checksum file; a cached master is handed out only if its
            download was accepted with this checksum, else the image is
            downloaded again (and verified).
        :param expected_checksum_algo: the algorithm of a bare value.
        :param image_auth_data: credentials, as
            :func:`ironic_images.image_service.get_image_service_auth_override`
            returns, or None.
        :param progress: ``progress(done, total)`` callable, or None.
        :param cpu_arch: for an ``oci://`` index: the architecture whose
            artifact to fetch (the node's), or None for any.
        :returns: a :class:`~ironic_images.cache.outcomes.CachedImage`.
        :raises: what :func:`ironic_images.fetch.fetcher.fetch` raises
            (ImageChecksumError, ImageUnacceptable, ...: the master is then
            left as it was); what the driver's revalidation raises;
            ImageDownloadFailed when the cache directory or ``dest`` cannot
            be written; ImageCacheError when the directory cannot be read.
        """
        started = time.time()
        try:
            return self._fetch_image(
                started, href, dest, ctx, force_raw, expected_format,
                expected_checksum, expected_checksum_algo, image_auth_data,
                progress, cpu_arch)
        except OSError as error:
            raise exception.ImageDownloadFailed(
                image_href=href, reason=_('master-image cache %(dir)s: '
                                          '%(error)s') % {
                    'dir': self.master_dir, 'error': _describe(error)})

    def _fetch_image(self, started, href, dest, ctx, force_raw,
                     expected_format, expected_checksum,
                     expected_checksum_algo, image_auth_data, progress,
                     cpu_arch):
        expected = checksum_files.resolve_checksum(
            expected_checksum, expected_checksum_algo, href)
        source = cache_masters.identify(href, ctx, image_auth_data, cpu_arch)
        args = dict(ctx=ctx, force_raw=force_raw,
                    expected_format=expected_format, expected=expected,
                    image_auth_data=image_auth_data, progress=progress)
        if source.service.is_local:
            # Nothing to keep a copy of: the cache directory is not even
            # created, and no lock file is.
            fetched = self._fetch(source.href, dest, args)
            return outcomes.bypassed(dest, fetched, outcomes.LOCAL_REASON)
        self._prepare()
        name = source.name + (RAW_SUFFIX if force_raw else '')
        master = os.path.join(self.master_dir, name)
        handout = cache_masters.HandOut(master, dest, href)
        # The lock is held to find, revalidate or download the master and
        # to link it; the destination is put in place after, so waiters
        # do not queue behind one another's fsyncs.
        with cache_locks.image_lock(self.master_dir, name):
            found = self._master_for(source, master, started, args)
            if found.meta is not None:
                handout.take()
        if found.meta is None:
            with cache_locks.download_slot(self.master_dir,
                                           CONF.download.concurrency):
                fetched = self._fetch(source.href, dest, args)
            return outcomes.bypassed(dest, fetched, found.reason)
        handout.finish()
        if not found.hit or found.converted:
            self.clean_up()
        elif progress is not None:
            progress(found.meta['size'], found.meta['size'])
        return outcomes.result(dest, master, found)

    def _master_for(self, source, master, started, args):
        """Find, convert or download a master, holding its lock.

        :returns: a :class:`~ironic_images.cache.outcomes.Found`; its
            ``meta`` is None when the image may not be cached (the master,
            if any, is removed).
        """
        meta = self._fresh_meta(source, master, started, args['expected'],
                                args['expected_format'])
        if meta is not None:
            LOG.debug('Master-image cache hit for %s',
                      masking.mask_href(source.href))
            return outcomes.Found(meta, True)
        properties = source.properties or source.service.show(source.href)
        if cache_masters.validators(source, properties) is None:
            LOG.debug('Not caching %s: its server says not to, or gives no '
                      'way to revalidate it', masking.mask_href(source.href))
            self._forget(master)
            return outcomes.Found(None, False, reason=(
                outcomes.NO_CACHE_REASON if properties.get('no_cache')
                else outcomes.NO_VALIDATOR_REASON))
        if args['force_raw']:
            meta = self._raw_from_master(source, master, started, args)
            if meta is not None:
                return outcomes.Found(meta, True, converted=True)
        return outcomes.Found(
            self._download(source, master, properties, args), False)

    def _raw_from_master(self, source, master, started, args):
        """Make a raw master from the cached master of the image as it came.

        Holding the lock of the raw master, it takes the other's: the
        order is always raw, then the other, so two callers cannot wait
        for each other.

        :returns: the raw master's sidecar, or None when the other master
            is missing or may not be handed out (then download).
        """
        plain = master[:-len(RAW_SUFFIX)]
        with cache_locks.image_lock(self.master_dir,
                                    os.path.basename(plain)):
            meta = self._fresh_meta(source, plain, started, args['expected'],
                                    args['expected_format'])
            if meta is None:
                return None
            LOG.info('Converting the cached master %(plain)s (%(format)s) '
                     'to raw for %(href)s', {
                         'plain': plain, 'format': meta.get('format'),
                         'href': masking.mask_href(source.href)})
            fetched = fetcher.FetchedImage(
                plain, meta['size'], meta.get('format'),
                meta.get('virtual_size'), meta.get('checksum'),
                meta.get('compression'), None)
            self._make_room(meta.get('virtual_size') or 0)
            cache_masters.remove_unless_regular(master)
            if fetched.format in formats.DISK_FORMATS:
                # A copy: a second link would count as a use of both.
                _copy(plain, master)
            else:
                fetcher.convert_fetched(fetched, master, 'raw', source.href,
                                        progress=args['progress'])
                meta = dict(meta, format='raw',
                            size=os.stat(master).st_size,
                            virtual_size=fetched.virtual_size)
        meta['validated_at'] = time.time()
        cache_masters.write_meta(master, meta, durable=True)
        return meta

    def _fresh_meta(self, source, master, started, expected,
                    expected_format):
        """The sidecar of a master that may be handed out, else None."""
        meta = cache_masters.read_meta(master)
        if meta is None:
            return None
        if expected_format and expected_format not in meta['formats']:
            return None
        # A master converted to raw passed the policy as its source did;
        # any other is handed out in its own format. Downloading it again
        # applies the policy of now, or fails as it would uncached.
        if not (master.endswith(RAW_SUFFIX)
                or _format_permitted(meta.get('format'), expected_format)):
            LOG.info('The master %(master)s is %(format)s, which '
                     '[image_format] no longer lets through',
                     {'master': master, 'format': meta.get('format')})
            return None
        if not source.immutable and meta['validated_at'] < started:
            # Unless another caller validated it while this one waited.
            if not cache_masters.unchanged(source, meta):
                LOG.info('%s changed since it was cached; downloading it '
                         'again', masking.mask_href(source.href))
                return None
            meta['validated_at'] = time.time()
            try:
                cache_masters.write_meta(master, meta, durable=False)
            except OSError as error:
                # Losing it costs the next caller one more revalidation; a
                # full disk must not fail a hit, which needs no space.
                LOG.warning('Cannot record the revalidation of %(master)s: '
                            '%(error)s', {'master': master,
                                          'error': _describe(error)})
        if expected is not None and str(expected) not in meta['checksums']:
            # Downloading again verifies it, or fails as it would uncached.
            return None
        return meta

    def _download(self, source, master, properties, args):
        """Download a master (holding its lock) and record its sidecar."""
        href = source.href
        LOG.info('Master-image cache miss for %s; downloading it',
                 masking.mask_href(href))
        previous = cache_masters.read_meta(master) or {}
        cache_masters.remove_unless_regular(master)
        need = properties.get('size') or 0
        if args['force_raw']:
            need += properties.get('virtual_size') or 0
        self._make_room(need)
        with cache_locks.download_slot(self.master_dir,
                                       CONF.download.concurrency):
            try:
                fetched = self._fetch(href, master, args)
            except exception.InsufficientDiskSpace as error:
                # A conversion needs room for the virtual size, known only
                # once the image is inspected: free it and try again.
                amount = ((error.kwargs.get('required_mib') or 0)
                          - (error.kwargs.get('free_mib') or 0)) * units.Mi
                if amount <= 0 or not self.clean_up(amount):
                    raise
                fetched = self._fetch(href, master, args)
        validators = cache_masters.validators(
            source, fetched.properties or properties) or {}
        # What this download was accepted with (the driver verified the
        # checksum, or superseded it as OCI does with the layer digest);
        # the same image fetched before was accepted with what it had.
        checksums = {str(args['expected']) if args['expected'] else None,
                     fetched.checksum}
        formats = {args['expected_format'],
                   None if args['force_raw'] else fetched.format}
        if source.immutable:
            checksums.update(previous.get('checksums', ()))
            formats.update(previous.get('formats', ()))
        meta = {'kind': source.kind,
                'href': masking.mask_href(href),
                'validated_at': time.time(),
                'etag': validators.get('etag'),
                'last_modified': validators.get('last_modified'),
                'fingerprint': validators.get('fingerprint'),
                'format': fetched.format,
                'formats': sorted(f for f in formats if f),
                'size': fetched.size, 'virtual_size': fetched.virtual_size,
                'compression': fetched.compression,
                'checksums': sorted(c for c in checksums if c),
                'checksum': fetched.checksum}
        cache_masters.write_meta(master, meta, durable=True)
        return meta

    @staticmethod
    def _fetch(href, path, args):
        fetch = (fetcher.fetch_to_raw if args['force_raw']
                 else fetcher.fetch)
        expected = args['expected']
        return fetch(args['ctx'], href, path,
                     checksum=str(expected) if expected else None,
                     expected_format=args['expected_format'],
                     image_auth_data=args['image_auth_data'],
                     progress=args['progress'])

    def _make_room(self, need):
        """Evict masters until ``need`` bytes are free, if it can."""
        if not need:
            return
        stat = os.statvfs(self.master_dir)
        free = stat.f_bavail * stat.f_frsize
        if need > free:
            self.clean_up(need - free)

    @staticmethod
    def _forget(master):
        """Remove a master (holding its lock) that may not be cached."""
        fileutils.remove_quietly(master)
        fileutils.remove_quietly(cache_masters.meta_path(master))

    def _prepare(self):
        """Create the directories; remove crash leftovers once a process."""
        os.makedirs(os.path.join(self.master_dir, cache_locks.LOCK_DIR),
                    exist_ok=True)
        with _PREPARED_LOCK:
            if self.master_dir in _PREPARED:
                return
        self.remove_leftovers()

    def remove_leftovers(self):
        """Remove what a crash left behind: temp files, orphan sidecars.

        A temp file is removed only when no one holds the lock of its
        master, so a download running in another process is left alone.
        Runs before the first fetch of a process from a directory, unless
        called before.

        :returns: the names removed.
        :raises: ImageCacheError when the directory cannot be read.
        """
        removed = self._guarded(cache_eviction.remove_leftovers)
        with _PREPARED_LOCK:
            _PREPARED.add(self.master_dir)
        return removed

    def clean_up(self, amount=None):
        """Evict unused masters: expired first, then LRU under the cap.

        A cache directory that does not exist is left so: nothing to free.

        :param amount: bytes to free, or None for TTL and size cap alone.
        :returns: the bytes freed.
        :raises: ImageCacheError when the directory cannot be read.
        """
        if not os.path.isdir(self.master_dir):
            return 0
        return self._guarded(cache_eviction.clean_up, self.cache_ttl,
                             self.cache_size, amount)

    def _guarded(self, function, *args):
        try:
            return function(self.master_dir, *args)
        except OSError as error:
            raise exception.ImageCacheError(path=self.master_dir,
                                            reason=_describe(error))

    def list(self):
        """Describe the masters of the cache.

        :returns: a list of dicts, least recently used first: ``name``,
            ``size``, ``allocated``, ``last_used`` (epoch seconds),
            ``in_use`` (linked elsewhere) and, from the sidecar, ``href``
            (masked), ``kind``, ``format``, ``virtual_size``,
            ``checksum`` and ``validated_at``.
        :raises: ImageCacheError when the directory cannot be read.
        """
        try:
            masters = cache_eviction.list_masters(self.master_dir)
        except FileNotFoundError:
            return []
        except OSError as error:
            raise exception.ImageCacheError(path=self.master_dir,
                                            reason=_describe(error))
        listing = []
        for master in sorted(masters, key=lambda m: m.last_used):
            meta = cache_masters.read_meta(master.path) or {}
            listing.append({
                'name': master.name, 'size': master.size,
                'allocated': master.allocated,
                'last_used': master.last_used,
                'in_use': master.links > 1,
                'href': meta.get('href'), 'kind': meta.get('kind'),
                'format': meta.get('format'),
                'virtual_size': meta.get('virtual_size'),
                'checksum': meta.get('checksum'),
                'validated_at': meta.get('validated_at')})
        return listing


def _describe(error):
    text = os.strerror(error.errno) if error.errno else str(error)
    return '%s: %s' % (error.filename, text) if error.filename else text


def _format_permitted(fmt, expected_format):
    """Whether ``[image_format]`` as it is now lets a file of ``fmt`` out.

    The operator may have refused the format since the master was
    fetched, or made a declared format binding.
    """
    if fmt not in gate.permitted_formats():
        return False
    return not (expected_format and CONF.image_format.require_format_match
                and not gate.format_matches(fmt, expected_format))


def _copy(source, dest):
    part = fileutils.part_path(dest, follow_symlinks=False)
    try:
        cache_masters.copy_sparse(source, part)
    except BaseException:
        fileutils.remove_quietly(part)
        raise
    fileutils.commit(part, dest, follow_symlinks=False)
