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

"""Case: 16 concurrent ImageCache.fetch_image calls of one uncached image.

Usage: ours_cache_concurrent.py URL OUTPUT SHA256_HEX [threads|processes]

Every process first does what a running service has done before: load
the driver, check the cache directory for leftovers. Then the baseline:
one fetch_image(URL, OUTPUT, expected_checksum='sha256:HEX') into a new,
empty cache directory (one caller, so one download: HEAD, GET, sha256 in
transfer, link), timed; its cache is then removed. Then 16 callers
(threads of this process, or processes started with multiprocessing's
spawn) wait at a barrier and call fetch_image of the same URL, each to its
own destination, into another new cache directory; the time is from the
barrier's release until the last caller is done. Every caller counts
the GET requests its process sends to URL (requests' HTTPAdapter.send).
Reports that time as ``seconds``, the baseline as ``single_seconds``,
their ratio, the upstream GETs and the downloads (callers that did not
hit the cache). Fails unless every destination is the same inode.
Destinations and caches are removed.
"""

import multiprocessing
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import traceback

import common

CALLERS = 16
# Seconds to wait for the callers to be ready, then for them all to finish:
# a caller that dies or hangs fails the case instead of blocking it.
READY_TIMEOUT = 300
RUN_TIMEOUT = 900


def _configure():
    from ironic_images import conf
    conf.CONF([], project='ironic-images')
    # Imported before the clock starts.
    from ironic_images import image_cache  # noqa: F401


def _count_gets(url, counter):
    """Count the GETs of URL sent by this process into counter[0]."""
    import requests.adapters

    send = requests.adapters.HTTPAdapter.send
    lock = threading.Lock()

    def _send(adapter, request, *args, **kwargs):
        if request.method == 'GET' and request.url == url:
            with lock:
                counter[0] += 1
        return send(adapter, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = _send


def _fetch(master_dir, url, dest, checksum):
    from ironic_images import image_cache

    result = image_cache.ImageCache(master_dir, 2 ** 50, 3600).fetch_image(
        url, dest, expected_checksum=checksum)
    return result.hit, os.stat(dest).st_ino


def _warm_up(master_dir, url):
    """What a long-running service has done before: load the driver."""
    from ironic_images import image_cache
    from ironic_images import image_service

    image_service.get_image_service(url)
    image_cache.ImageCache(master_dir).remove_leftovers()


def _process_caller(barrier, results, master_dir, url, dest, checksum):
    try:
        _configure()
        _warm_up(master_dir, url)
        gets = [0]
        _count_gets(url, gets)
        barrier.wait(READY_TIMEOUT)
        hit, inode = _fetch(master_dir, url, dest, checksum)
        results.put((hit, inode, gets[0]))
    except BaseException:
        results.put(traceback.format_exc())
        raise


def _run_threads(master_dir, url, dests, checksum):
    gets = [0]
    _count_gets(url, gets)
    barrier = threading.Barrier(len(dests) + 1)
    results, errors = [], []

    def _caller(dest):
        try:
            barrier.wait(READY_TIMEOUT)
            results.append(_fetch(master_dir, url, dest, checksum))
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=_caller, args=(dest,))
               for dest in dests]
    for thread in threads:
        thread.start()
    barrier.wait(READY_TIMEOUT)
    start = time.perf_counter()
    for thread in threads:
        thread.join(RUN_TIMEOUT)
    seconds = time.perf_counter() - start
    if errors or any(thread.is_alive() for thread in threads):
        common.fail('a caller failed or hangs: %s' % (errors or ['']))
    return seconds, [(hit, inode, 0) for hit, inode in results], gets[0]


def _run_processes(master_dir, url, dests, checksum):
    context = multiprocessing.get_context('spawn')
    barrier = context.Barrier(len(dests) + 1)
    outcomes = context.Queue()
    processes = [context.Process(target=_process_caller, args=(
        barrier, outcomes, master_dir, url, dest, checksum))
        for dest in dests]
    for process in processes:
        process.start()
    try:
        barrier.wait(READY_TIMEOUT)
        start = time.perf_counter()
        results = [outcomes.get(timeout=RUN_TIMEOUT) for _dest in dests]
        seconds = time.perf_counter() - start
    except (threading.BrokenBarrierError, queue.Empty):
        results = None
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    failures = [r for r in results or () if isinstance(r, str)]
    if results is None or failures:
        common.fail('a caller failed or hangs: %s' % (failures or ['']))
    return seconds, results, sum(gets for _hit, _inode, gets in results)


def main(url, output, sha256, mode='threads'):
    if mode not in ('threads', 'processes'):
        common.fail('the mode is threads or processes, not %s' % mode)
    _configure()
    checksum = 'sha256:%s' % sha256
    work_dir = tempfile.mkdtemp(prefix='cache-concurrent-',
                                dir=os.path.dirname(output))
    try:
        single_dir = os.path.join(work_dir, 'single')
        os.mkdir(single_dir)
        _warm_up(single_dir, url)
        start = time.perf_counter()
        _fetch(single_dir, url, output, checksum)
        single = time.perf_counter() - start
        shutil.rmtree(single_dir)
        dests = [os.path.join(work_dir, 'dest%d' % number)
                 for number in range(CALLERS)]
        master_dir = os.path.join(work_dir, 'cache')
        os.mkdir(master_dir)
        _warm_up(master_dir, url)
        run = _run_threads if mode == 'threads' else _run_processes
        seconds, results, gets = run(master_dir, url, dests, checksum)
        if len({inode for _hit, inode, _gets in results}) != 1:
            common.fail('the destinations are not one inode')
        downloads = len([hit for hit, _inode, _gets in results if not hit])
        common.report(os.path.getsize(output), seconds, None,
                      single_seconds=single, ratio=seconds / single,
                      upstream_gets=gets, downloads=downloads,
                      callers=CALLERS, mode=mode, verified=checksum)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == '__main__':
    if len(sys.argv) not in (4, 5):
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
