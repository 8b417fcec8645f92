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

"""Limit: hashlib sha256 over an in-memory buffer.

Usage: hashlib_rate.py TOTAL_BYTES [CHUNK_BYTES]

Hashes TOTAL_BYTES by feeding the same random buffer (CHUNK_BYTES, default
4 MiB: the [download]chunk_size of ironic-images) to one sha256 object, in
one thread: the most a single-stream sha256 verification can do here.
"""

import hashlib
import os
import sys
import time

import common


def main(total, chunk=4 * 1024 * 1024):
    total, chunk = int(total), int(chunk)
    buffer = memoryview(os.urandom(chunk))
    rss_before = common.proc_status_kib('VmRSS')
    digest = hashlib.sha256()
    done = 0
    start = time.perf_counter()
    start_cpu = time.process_time()
    while done < total:
        piece = buffer[:min(chunk, total - done)]
        digest.update(piece)
        done += len(piece)
    digest.hexdigest()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - start_cpu
    common.report(done, seconds, cpu_seconds, rss_before_kib=rss_before,
                  verified='n/a (%d-byte buffer)' % chunk)


if __name__ == '__main__':
    if len(sys.argv) not in (2, 3):
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
