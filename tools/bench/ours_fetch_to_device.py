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

"""Case: ironic-images fetch_to_volume_format of a qcow2 onto a device.

Usage: ours_fetch_to_device.py URL DEVICE SHA256_HEX SIZE TMPDIR

Calls ``image_utils.fetch_to_volume_format(None, URL, DEVICE, 'raw',
checksum='sha256:HEX')`` with ``[DEFAULT]tempdir`` = TMPDIR: the qcow2
is decoded onto the block device while it downloads (sha256 and format
inspection on the same chunks, unallocated ranges zeroed with
BLKZEROOUT, O_DIRECT), then fsynced. Reports ``bytes`` as SIZE, the size
of the qcow2 fetched, and ``temp_peak_bytes``, the most disk space the
files under TMPDIR took during the call.
"""

import os
import stat
import sys

import common


def main(url, device, sha256, size, tmpdir):
    from ironic_images import conf
    conf.CONF([], project='ironic-images')
    conf.CONF.set_override('tempdir', tmpdir)
    from ironic_images import image_utils

    with common.TempSpace(tmpdir) as temp, common.Measure() as measure:
        fetched = image_utils.fetch_to_volume_format(
            None, url, device, 'raw', checksum='sha256:%s' % sha256)
    if fetched.format != 'raw' or not stat.S_ISBLK(os.stat(device).st_mode):
        common.fail('not a raw disk on the device: %r' % fetched)
    common.report(int(size), measure.seconds, measure.cpu_seconds,
                  rss_before_kib=measure.rss_before,
                  temp_peak_bytes=temp.peak, verified=fetched.checksum)


if __name__ == '__main__':
    if len(sys.argv) != 6:
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
