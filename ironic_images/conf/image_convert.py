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

"""Options of the [image_convert] group (qemu-img conversion)."""

from oslo_config import cfg

from ironic_images._i18n import _
from ironic_images.conf import sharing

group = cfg.OptGroup(name='image_convert', title='Image conversion options')

opts = [
    cfg.BoolOpt('force_raw',
                default=True,
                help=_('Convert fetched images to raw. Ironic equivalent: '
                       '[DEFAULT]force_raw_images. Default: True.')),
    cfg.IntOpt('memory_limit_mb',
               default=2048, min=64,
               help=_('Address-space limit, in MiB, for qemu-img processes '
                      '(info and convert). Default: 2048.')),
    cfg.IntOpt('cpu_time_limit_s',
               default=120, min=1,
               help=_('CPU-time limit, in seconds, for qemu-img info. '
                      'Conversions are bounded by memory only, since their '
                      'time grows with the image. Default: 120.')),
    cfg.IntOpt('attempts',
               default=3, min=1,
               help=_('Attempts of a conversion that fails for lack of '
                      'memory (ENOMEM) or a transient error (EAGAIN). '
                      'Default: 3.')),
    cfg.IntOpt('coroutines',
               default=16, min=1, max=16,
               help=_('Parallel coroutines of qemu-img convert (-m); with '
                      'out-of-order writes (-W). Default: 16.')),
    cfg.BoolOpt('stream_qcow2',
                default=True,
                help=_('When an image is fetched to raw, write a qcow2 as a '
                       'raw disk while it downloads, if its header allows '
                       '(version 2 or 3, clusters of 64 KiB to 2 MiB, no '
                       'encryption, backing file, external data file or '
                       'extended L2 entries): no temp file and no qemu-img '
                       'pass after the download. When False, or for any '
                       'other qcow2, the image is downloaded to a temp file '
                       'and converted by qemu-img. Default: True.')),
]


def register_opts(conf):
    sharing.register_opts(conf, opts, group)


def list_opts():
    return group.name, opts
