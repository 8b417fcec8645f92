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

"""Checksums: parsing, algorithms, checksum files and verification.

The public face of :mod:`ironic_images.transfer.checksums` (values,
algorithms, checksum-file parsing) and
:mod:`ironic_images.image_service.checksum_files` (checksum files read
from a URL).
"""

from ironic_images.image_service import checksum_files
from ironic_images.transfer import checksums

CHECKSUM_URL_SCHEMES = checksums.CHECKSUM_URL_SCHEMES
Checksum = checksums.Checksum
SUPPORTED_ALGORITHMS = checksums.SUPPORTED_ALGORITHMS
compute_file_checksum = checksums.compute_file_checksum
fetch_checksum_file = checksum_files.fetch_checksum_file
is_checksum_url = checksums.is_checksum_url
parse_checksum = checksums.parse_checksum
parse_checksum_file = checksums.parse_checksum_file
resolve_checksum = checksum_files.resolve_checksum
