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

"""Option listing for oslo-config-generator and the Sphinx extension.

The groups are those of :data:`ironic_images.conf.GROUP_MODULES`.
"""

from ironic_images import conf


def list_opts():
    """Return a list of (group name, options) for every group.

    :returns: a list of ``(group_name, [oslo_config.cfg.Opt])`` tuples.
    """
    return conf.list_opts()
