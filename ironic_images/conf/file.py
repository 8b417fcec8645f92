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

"""Options of the [file] group (the file:// image service)."""

from oslo_config import cfg

from ironic_images._i18n import _
from ironic_images.conf import sharing

group = cfg.OptGroup(name='file', title='file:// image service options')

opts = [
    cfg.ListOpt('allowed_paths',
                default=['/var/lib/ironic/images'],
                help=_('Directories from which file:// images may be read. '
                       'Symbolic links and ".." are resolved before the '
                       'check, so a link inside an allowed directory '
                       'pointing outside it is refused. /dev, /proc, /sys, '
                       '/boot, /etc and /run are always refused, even when '
                       'listed. An empty list disables file:// entirely. '
                       'Ironic equivalent: [conductor]file_url_allowed_paths. '
                       'Default: /var/lib/ironic/images.')),
]


def register_opts(conf):
    sharing.register_opts(conf, opts, group)


def list_opts():
    return group.name, opts
