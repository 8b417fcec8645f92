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

"""Case: ironic-images image_utils.fetch_to_raw of a qcow2 over http.

Usage: ours_fetch_to_raw.py URL OUTPUT SHA256_HEX SIZE

Calls ``image_utils.fetch_to_raw(None, URL, OUTPUT,
checksum='sha256:HEX')``: one pass over the bytes (sha256, format
inspection, each qcow2 data cluster written sparse at its place in the raw
disk) into a temp file, inspection of the output, fsync and rename. A
qcow2 that cannot be streamed would take ``qemu-img info`` and
``qemu-img convert`` instead; the reads count both ways. Reports
``bytes`` as SIZE, the size of the qcow2 fetched, and the reads of the
process (and of its qemu-img children) from /proc/self/io up to the start
of the conversion and in all.
"""

import os
import sys

import common


def main(url, output, sha256, size):
    from ironic_images import conf
    conf.CONF([], project='ironic-images')
    from ironic_images import image_utils
    from ironic_images.qemu import convert as qemu_convert

    reads = common.ReadsBeforeConversion()
    qemu_convert.convert_image = reads.wrap(qemu_convert.convert_image)
    with common.Measure() as measure:
        with reads:
            fetched = image_utils.fetch_to_raw(
                None, url, output, checksum='sha256:%s' % sha256)
    if fetched.format != 'raw' or not os.path.exists(output):
        common.fail('no raw output: %r' % fetched)
    common.report(int(size), measure.seconds,
                  measure.cpu_seconds, rss_before_kib=measure.rss_before,
                  output_bytes=os.path.getsize(output),
                  verified=fetched.checksum, **reads.result())


if __name__ == '__main__':
    if len(sys.argv) != 5:
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
