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

"""Case: ironic-images HttpImageService.download with sha256, to a file.

Usage: ours_http_download.py URL OUTPUT SHA256_HEX [buffered]

Opens OUTPUT for binary writing and calls
``HttpImageService().download(URL, file, checksum='sha256:HEX')``: the
pipeline of ironic_images.transfer hashes in transfer (in its own thread)
and raises ImageChecksumError on a mismatch; the file is written with
O_DIRECT (through the page cache with ``buffered``:
``[download]direct_io = False``).
"""

import sys

import common


def main(url, output, sha256, mode='direct'):
    from ironic_images import conf
    conf.CONF([], project='ironic-images')
    conf.CONF.set_override('direct_io', mode != 'buffered', 'download')
    from ironic_images.image_service import http

    service = http.HttpImageService()
    with common.Measure() as measure:
        with open(output, 'wb') as image_file:
            service.download(url, image_file,
                             checksum='sha256:%s' % sha256)
    if service.transfer_verified_checksum != 'sha256:%s' % sha256:
        common.fail('the checksum was not verified in transfer: %r'
                    % service.transfer_verified_checksum)
    measure.report(output, verified=service.transfer_verified_checksum)


if __name__ == '__main__':
    if len(sys.argv) not in (4, 5):
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
