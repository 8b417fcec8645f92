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

"""Case: Ironic 39 HttpImageService.download with sha256, to a file.

Usage: ironic_http_download.py URL OUTPUT SHA256_HEX

Runs in Ironic's own virtualenv and does what ``ironic.common.images.fetch``
does for an http(s) image with a sha256 checksum, minus the zstd sniffing
and raw conversion that come after: open the path for binary writing (as
``fetch_into`` does), call ``download(URL, file, checksum=HEX,
checksum_algo='sha256')`` (Ironic hashes in transfer with
``checksum_utils.TransferHelper``: ``iter_content`` in 1 MiB chunks, hashed
in the reading thread), and, only when the service did not verify in
transfer, hash the file afterwards with ``checksum_utils.validate_checksum``
as ``fetch`` does.
"""

import sys

import common


def main(url, output, sha256):
    from ironic.conf import CONF
    CONF([], project='ironic')
    from ironic.common import checksum_utils
    from ironic.common import image_service

    service = image_service.HttpImageService()
    with common.Measure() as measure:
        with open(output, 'wb') as image_file:
            service.download(url, image_file, checksum=sha256,
                             checksum_algo='sha256')
        if service.transfer_verified_checksum:
            verified = 'in transfer (%s)' % service.transfer_verified_checksum
        else:
            checksum_utils.validate_checksum(output, sha256, 'sha256')
            verified = 'after the download (validate_checksum on the file)'
    measure.report(output, verified=verified)


if __name__ == '__main__':
    if len(sys.argv) != 4:
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
