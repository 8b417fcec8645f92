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

"""Case: ironic-images OciImageService.download of an artifact, to a file.

Usage: ours_oci_download.py OCI_HREF OUTPUT BLOB_DIGEST [buffered]

OCI_HREF is ``oci://HOST/NAME@sha256:MANIFEST_DIGEST`` of an artifact
manifest with one layer whose digest is BLOB_DIGEST (``sha256:HEX``), on a
plain-HTTP registry: ``[oci]permit_fallback_to_http_transport = True``.
Calls ``set_image_auth(OCI_HREF, None)`` (anonymous), then, timed, opens
OUTPUT for binary writing and calls ``OciImageService().download(OCI_HREF,
file)``: one GET of the manifest (its bytes verified against the manifest
digest), then one GET of the blob streamed by ironic_images.transfer, the
layer digest verified in transfer (hashed in its own thread), the file
written with O_DIRECT (through the page cache with ``buffered``:
``[download]direct_io = False``) and the size checked against the
manifest's.  Fails unless
``transfer_verified_checksum`` is BLOB_DIGEST.
"""

import sys

import common


def main(href, output, blob_digest, mode='direct'):
    from ironic_images import conf
    conf.CONF([], project='ironic-images')
    conf.CONF.set_override('permit_fallback_to_http_transport', True, 'oci')
    conf.CONF.set_override('direct_io', mode != 'buffered', 'download')
    from ironic_images.image_service import oci

    service = oci.OciImageService()
    service.set_image_auth(href, None)
    with common.Measure() as measure:
        with open(output, 'wb') as image_file:
            service.download(href, image_file)
    if service.transfer_verified_checksum != blob_digest:
        common.fail('the blob digest was not verified in transfer: %r'
                    % service.transfer_verified_checksum)
    measure.report(output,
                   verified='manifest digest, then layer digest in transfer '
                            '(%s)' % service.transfer_verified_checksum)


if __name__ == '__main__':
    if len(sys.argv) not in (4, 5):
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
