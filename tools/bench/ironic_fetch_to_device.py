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

"""Case: Ironic 39 images.fetch + image_to_raw, then a dd-style copy.

Usage: ironic_fetch_to_device.py URL DEVICE SHA256_HEX SIZE TMPDIR

Runs in Ironic's own virtualenv: ``images.fetch(None, URL, TMP,
checksum=HEX, checksum_algo='sha256')`` into TMPDIR, ``images.
image_to_raw(URL, RAW, TMP)`` (qemu-img convert to a raw file in
TMPDIR), then the raw file copied onto the device as ``dd bs=1M
oflag=direct conv=fsync`` does (every byte, zeros included), and the
files removed. Reports ``bytes`` as SIZE and ``temp_peak_bytes``, the
most disk space the files under TMPDIR took.
"""

import os
import subprocess
import sys

import common


def main(url, device, sha256, size, tmpdir):
    from ironic.conf import CONF
    CONF([], project='ironic')
    from ironic.common import images

    tmp = os.path.join(tmpdir, 'image.download')
    raw = os.path.join(tmpdir, 'image.raw')
    try:
        with common.TempSpace(tmpdir) as temp, \
                common.Measure() as measure:
            images.fetch(None, url, tmp, checksum=sha256,
                         checksum_algo='sha256')
            images.image_to_raw(url, raw, tmp)
            subprocess.run(['dd', 'if=%s' % raw, 'of=%s' % device,
                            'bs=1M', 'oflag=direct', 'conv=fsync',
                            'status=none'], check=True)
            os.unlink(raw)
    finally:
        for path in (tmp, raw):
            if os.path.exists(path):
                os.unlink(path)
    common.report(int(size), measure.seconds, measure.cpu_seconds,
                  rss_before_kib=measure.rss_before,
                  temp_peak_bytes=temp.peak,
                  verified='in transfer (sha256)')


if __name__ == '__main__':
    if len(sys.argv) != 6:
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
