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

"""The OCI distribution client: the public face.

:class:`OciClient` and the reference parser live in
:mod:`ironic_images.image_service.oci`, beside the ``oci://`` driver that
uses them.
"""

from ironic_images.image_service.oci import client
from ironic_images.image_service.oci import reference
from ironic_images.transfer import bodies

DOCKER_LIST_TYPE = client.DOCKER_LIST_TYPE
DOCKER_MANIFEST_TYPE = client.DOCKER_MANIFEST_TYPE
INDEX_TYPE = client.INDEX_TYPE
INDEX_TYPES = client.INDEX_TYPES
MANIFEST_ACCEPT = client.MANIFEST_ACCEPT
MANIFEST_TYPE = client.MANIFEST_TYPE
MAX_MANIFEST_SIZE = bodies.MANIFEST
OciClient = client.OciClient
OciReference = reference.OciReference
parse_reference = reference.parse_reference
single_layer = client.single_layer
