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

"""Case: Ironic 39 images.fetch + images.image_to_raw of a qcow2 over http.

Usage: ironic_fetch_to_raw.py URL OUTPUT SHA256_HEX SIZE

Runs in Ironic's own virtualenv and does what Ironic's image cache does
for an http(s) image (``ironic.drivers.modules.image_cache``
``_fetch``): ``images.fetch(None, URL, TMP, checksum=HEX,
checksum_algo='sha256')`` into a temp file beside OUTPUT (sha256 verified
in transfer, the zstd sniffing), then ``images.image_to_raw(URL, OUTPUT,
TMP)``: the format safety check on the file, ``qemu-img convert -O raw``,
the format check of the output, rename. Reports ``bytes`` as SIZE, the
size of the qcow2 fetched, and the reads of the process (and of its qemu-img
children) from /proc/self/io up to the start of the conversion and in all.
"""

import os
import sys

import common


def main(url, output, sha256, size):
    from ironic.conf import CONF
    CONF([], project='ironic')
    from ironic.common import images
    from ironic.common import qemu_img

    reads = common.ReadsBeforeConversion()
    qemu_img.convert_image = reads.wrap(qemu_img.convert_image)
    tmp = output + '.download'
    try:
        with common.Measure() as measure:
            with reads:
                images.fetch(None, url, tmp, checksum=sha256,
                             checksum_algo='sha256')
                images.image_to_raw(url, output, tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if not os.path.exists(output):
        common.fail('no raw output')
    common.report(int(size), measure.seconds,
                  measure.cpu_seconds, rss_before_kib=measure.rss_before,
                  output_bytes=os.path.getsize(output),
                  verified='in transfer (sha256)', **reads.result())


if __name__ == '__main__':
    if len(sys.argv) != 5:
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
