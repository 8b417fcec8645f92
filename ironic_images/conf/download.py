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

"""Options of the [download] group (the transfer pipeline)."""

from oslo_config import cfg

from ironic_images._i18n import _
from ironic_images.conf import sharing

group = cfg.OptGroup(name='download', title='Transfer pipeline options')

opts = [
    cfg.IntOpt('chunk_size',
               default=4 * 1024 * 1024, min=64 * 1024, max=64 * 1024 * 1024,
               help=_('Size in bytes of one buffer of the transfer '
                      'pipeline. A few buffers are in flight at once, so '
                      'memory use stays a small multiple of this. '
                      'Default: 4 MiB.')),
    cfg.BoolOpt('direct_io',
                default=True,
                help=_('Write a download into a regular file with '
                       'O_DIRECT: the bytes go from the pipeline\'s '
                       'buffers to the disk without a copy into the page '
                       'cache, which saves CPU and leaves the page cache '
                       'to the rest of the host. The last piece of a '
                       'file, and file systems that refuse O_DIRECT, are '
                       'written through the page cache. Turn it off where '
                       'the disk is much slower than the network and the '
                       'file is read back at once. Default: True.')),
    cfg.IntOpt('retries',
               default=3, min=0,
               help=_('Times a dropped, stalled or failed transfer is '
                      'retried, with exponential backoff. Default: 3.')),
    cfg.BoolOpt('resume',
                default=True,
                help=_('Resume an interrupted HTTP transfer with a Range '
                       'request (guarded by If-Range) instead of starting '
                       'again from the first byte. Default: True.')),
    cfg.IntOpt('concurrency',
               default=4, min=1,
               help=_('Most image downloads run at once by the image '
                      'cache; further requests wait. Default: 4.')),
    cfg.IntOpt('max_decompressed_size',
               default=256 * 1024, min=1,
               help=_('Largest output, in MiB, of in-stream decompression '
                      '(zstd, gzip, xz). A compressed image that expands '
                      'past it is refused, so a decompression bomb fails '
                      'cleanly. Default: 262144 (256 GiB).')),
]


def register_opts(conf):
    sharing.register_opts(conf, opts, group)


def list_opts():
    return group.name, opts
