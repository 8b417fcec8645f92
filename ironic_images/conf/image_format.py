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

"""Options of the [image_format] group (inspection and safety checks)."""

from oslo_config import cfg

from ironic_images._i18n import _
from ironic_images.conf import sharing

group = cfg.OptGroup(name='image_format', title='Image format safety options')

opts = [
    cfg.ListOpt('permitted_formats',
                default=['raw', 'gpt', 'qcow2', 'iso'],
                help=_('Image formats accepted after inspection; any other '
                       'detected format is refused before qemu-img sees '
                       'it. Ironic equivalent: '
                       '[conductor]permitted_image_formats. Default: raw, '
                       'gpt, qcow2, iso.')),
    cfg.BoolOpt('disable_deep_inspection',
                default=False,
                help=_('Skip the format inspector\'s safety checks (backing '
                       'files, data files, vmdk extents). Dangerous: only '
                       'for images from a fully trusted source. Ironic '
                       'equivalent: [conductor]disable_deep_image_'
                       'inspection. Default: False.')),
    cfg.ListOpt('vmdk_allowed_types',
                default=['monolithicSparse', 'streamOptimized'],
                help=_('VMDK create types accepted. The defaults cannot '
                       'reference other files; descriptor types that can '
                       '(monolithicFlat, twoGbMaxExtent*) would let an image '
                       'read host files. Cinder equivalent: '
                       '[DEFAULT]vmdk_allowed_types.')),
    cfg.BoolOpt('require_format_match',
                default=True,
                help=_('Refuse an image whose detected format differs from '
                       'the declared one (raw accepts gpt; iso with a GPT '
                       'counts as iso). Default: True.')),
]


def register_opts(conf):
    sharing.register_opts(conf, opts, group)


def list_opts():
    return group.name, opts
