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

"""Case: Cinder's way of putting a qcow2 onto a volume.

Usage: cinder_fetch_to_device.py URL DEVICE SHA256_HEX SIZE TMPDIR

What ``cinder.image.image_utils.fetch_to_volume_format`` does, step by
step, without Cinder (its image service is Glance; here the same bytes
come from nginx): download the image to a temp file in the conversion
directory (TMPDIR), hashing each chunk as it is written (Glance's
``os_hash_value`` check), ``qemu-img info`` of the file, then ``qemu-img
convert -O raw -t none -f qcow2 TMP DEVICE`` (Cinder's command for a
volume whose device takes O_DIRECT), and the temp file removed. Reports
``bytes`` as SIZE and ``temp_peak_bytes``, the most disk space the files
under TMPDIR took.
"""

import hashlib
import os
import subprocess
import sys
import tempfile

import common

CHUNK = 64 * 1024  # glanceclient's chunk size


def main(url, device, sha256, size, tmpdir):
    import requests

    fd, tmp = tempfile.mkstemp(dir=tmpdir)
    try:
        with common.TempSpace(tmpdir) as temp, \
                common.Measure() as measure:
            digest = hashlib.sha256()
            with os.fdopen(fd, 'wb') as image_file, \
                    requests.get(url, stream=True, timeout=60) as response:
                response.raise_for_status()
                for chunk in response.iter_content(CHUNK):
                    digest.update(chunk)
                    image_file.write(chunk)
            if digest.hexdigest() != sha256:
                common.fail('checksum mismatch')
            subprocess.run(['qemu-img', 'info', '-f', 'qcow2',
                            '--output=json', tmp], check=True,
                           stdout=subprocess.DEVNULL)
            subprocess.run(['qemu-img', 'convert', '-O', 'raw', '-t',
                            'none', '-f', 'qcow2', tmp, device], check=True)
            os.unlink(tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    common.report(int(size), measure.seconds, measure.cpu_seconds,
                  rss_before_kib=measure.rss_before,
                  temp_peak_bytes=temp.peak, verified='sha256 in transfer')


if __name__ == '__main__':
    if len(sys.argv) != 6:
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
