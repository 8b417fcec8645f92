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

"""Options of the [image_cache] group (the master-image cache)."""

from oslo_config import cfg

from ironic_images._i18n import _
from ironic_images.conf import sharing

group = cfg.OptGroup(name='image_cache', title='Master-image cache options')

opts = [
    cfg.StrOpt('master_path',
               default='/var/lib/ironic-images/master_images',
               help=_('Directory of the master images. It must be on the '
                      'same filesystem as the destinations for them to be '
                      'hardlinked rather than copied. Ironic equivalent: '
                      '[pxe]instance_master_path.')),
    cfg.IntOpt('size_mb',
               default=20480, min=0,
               help=_('Size cap of the cache in MiB; unused masters are '
                      'evicted, least recently used first, to stay under '
                      'it. Ironic equivalent: [pxe]image_cache_size. '
                      'Default: 20480.')),
    cfg.IntOpt('ttl_minutes',
               default=10080, min=0,
               help=_('Minutes after which an unused master is evicted. '
                      'Ironic equivalent: [pxe]image_cache_ttl. Default: '
                      '10080 (one week).')),
    cfg.IntOpt('cleanup_interval',
               default=3600, min=0,
               help=_('Seconds between clean-ups of the cache by a '
                      'long-running service; 0 cleans only before a '
                      'download. Default: 3600.')),
]


def register_opts(conf):
    sharing.register_opts(conf, opts, group)


def list_opts():
    return group.name, opts
