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

"""Case: Ironic 39 OciImageService.download of an artifact, to a file.

Usage: ironic_oci_download.py OCI_HREF OUTPUT BLOB_DIGEST

Runs in Ironic's own virtualenv and does what
``ironic.common.images.fetch`` does for an ``oci://`` image, minus the zstd
sniffing and raw conversion that come after.  OCI_HREF is
``oci://HOST/NAME@sha256:MANIFEST_DIGEST`` of an artifact manifest with one
layer whose digest is BLOB_DIGEST (``sha256:HEX``), on a plain-HTTP
registry: ``[oci]permit_fallback_to_http_transport = True`` (Ironic tries
HTTPS first and falls back to HTTP on the SSLError).  Calls
``set_image_auth(OCI_HREF, None)`` (as ``fetch_into`` does; with no
``[oci]authentication_config`` it does nothing), then, timed, opens OUTPUT
for binary writing (as ``fetch_into`` does) and calls
``OciImageService().download(OCI_HREF, file)``:
``OciClient.download_blob_from_manifest`` GETs the manifest (its text
verified against the manifest digest by ``validate_text_checksum``), then
GETs the blob, hashed in transfer by ``checksum_utils.TransferHelper``
(``iter_content`` 1 MiB, hashed in the reading thread) and compared with
the layer digest.  ``fetch`` does not hash the file again since
``transfer_verified_checksum`` is set; fails unless it is BLOB_DIGEST.
"""

import sys

import common


def main(href, output, blob_digest):
    from ironic.conf import CONF
    CONF([], project='ironic')
    CONF.set_override('permit_fallback_to_http_transport', True, 'oci')
    from ironic.common import image_service

    service = image_service.OciImageService()
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
    if len(sys.argv) != 4:
        common.fail(__doc__.strip().splitlines()[2])
    main(*sys.argv[1:])
