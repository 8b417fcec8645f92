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

"""Option listing for oslo-config-generator and the Sphinx extension."""

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


def list_opts():
    """Return a list of (group name, options) for every group.

    :returns: a list of ``(group_name, [oslo_config.cfg.Opt])`` tuples.
    """
    return [
        ('DEFAULT', default.opts),
        (file.group.name, file.opts),
        (http.group.name, http.opts),
        (oci.group.name, oci.opts),
        (glance.group.name, glance.list_opts()),
        (image_format.group.name, image_format.opts),
        (image_convert.group.name, image_convert.opts),
        (download.group.name, download.opts),
        (image_cache.group.name, image_cache.opts),
        service_user.list_opts(),
    ]
