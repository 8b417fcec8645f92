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

"""Case: ironic-images ImageCache.fetch_image of an image already cached.

Usage: ours_cache_hit.py URL OUTPUT SHA256_HEX

Primes a new cache directory beside OUTPUT with one fetch_image(URL, ...,
expected_checksum='sha256:HEX') (a download, not timed), then times five
more fetch_image calls of URL with the same checksum, the last to OUTPUT:
each is a cache hit, i.e. a conditional GET answered 304 Not Modified, the
sidecar updated and the master hardlinked to the destination. Reports the
median of the five as the time of one hit (``hit_ms`` lists them all).
Fails unless every timed call is a hit. The cache directory is removed
at the end.
"""

import os
import shutil
import statistics
import sys
import tempfile
import time

import common

HITS = 5


def main(url, output, sha256):
    from ironic_images import conf
    conf.CONF([], project='ironic-images')
    from ironic_images import image_cache

    master_dir = tempfile.mkdtemp(prefix='cache-hit-',
                                  dir=os.path.dirname(output))
    checksum = 'sha256:%s' % sha256
    try:
        cache = image_cache.ImageCache(master_dir, 2 ** 50, 3600)
        prime = cache.fetch_image(url, output + '.prime',
                                  expected_checksum=checksum)
        os.unlink(prime.path)
        seconds = []
        cpu = time.process_time()
        for number in range(HITS):
            dest = output if number == HITS - 1 else '%s.%d' % (output,
                                                                number)
            with common.Measure() as measure:
                result = cache.fetch_image(url, dest,
                                           expected_checksum=checksum)
            if not result.hit:
                common.fail('call %d was not a cache hit' % (number + 1))
            seconds.append(measure.seconds)
            if dest != output:
                os.unlink(dest)
        cpu = (time.process_time() - cpu) / HITS
        common.report(os.path.getsize(output), statistics.median(seconds),
                      cpu, rss_before_kib=measure.rss_before,
                      hit_ms=[round(s * 1000, 2) for s in seconds],
                      verified=checksum + ' (when the master was fetched)')
    finally:
        shutil.rmtree(master_dir, ignore_errors=True)


if __name__ == '__main__':
    if len(sys.argv) != 4:
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
