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

"""The configuration of ironic-images.

Every option of every group is registered on :data:`CONF` when this package
is imported. ``CONF`` is oslo.config's global object, so a service that
embeds ironic-images shares its configuration file.
"""

from oslo_config import cfg

from ironic_images.conf import default
from ironic_images.conf import download
from ironic_images.conf import file
from ironic_images.conf import glance
from ironic_images.conf import http
from ironic_images.conf import image_cache
from ironic_images.conf import image_convert
from ironic_images.conf import image_format
from ironic_images.conf import oci
from ironic_images.conf import service_user

CONF = cfg.CONF

GROUP_MODULES = (default, file, http, oci, glance, image_format,
                 image_convert, download, image_cache, service_user)

for _module in GROUP_MODULES:
    _module.register_opts(CONF)
