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

"""Options of the [DEFAULT] group."""

from oslo_config import cfg

from ironic_images._i18n import _
from ironic_images.conf import sharing

BUILTIN_IMAGE_SERVICES = ['file', 'http', 'https', 'oci', 'glance']

opts = [
    cfg.IntOpt('webserver_connection_timeout',
               default=60, min=1,
               help=_('Seconds to wait when connecting to, or reading from, '
                      'a web server (HTTP(S) images, OCI registries, '
                      'checksum URLs). A read that stalls this long is a '
                      'dropped connection and is resumed (see '
                      '[download]retries). Default: 60.')),
    cfg.StrOpt('webserver_verify_ca',
               default='True',
               help=_('TLS verification for HTTPS image and checksum '
                      'downloads: "True" verifies against the system CA '
                      'store, "False" disables verification (insecure), '
                      'any other value is the path of a CA bundle to trust. '
                      'It is passed on every request, so the '
                      'REQUESTS_CA_BUNDLE environment variable cannot '
                      'override it. [oci]verify_ca does the same for OCI '
                      'registries. Default: True.')),
    cfg.StrOpt('webserver_tls_minimum_version',
               default='1.2',
               choices=[('1.2', _('TLS 1.2 or later')),
                        ('1.3', _('TLS 1.3 only'))],
               help=_('Oldest TLS version accepted from HTTPS image '
                      'servers and registries. Ironic has this option too, '
                      'with a default of 1.3; in an Ironic conductor '
                      'Ironic\'s applies. Default: 1.2.')),
    cfg.StrOpt('tempdir',
               help=_('Directory for temporary files (conversion scratch '
                      'space, TemporaryImages). Default: the system '
                      'temporary directory. A download to a file is '
                      'written beside it, never here; one onto a block '
                      'device or into a stream uses this directory only '
                      'for what must be converted by qemu-img first (not '
                      'a raw image or a streamable qcow2 onto a device) '
                      'and for the compressed clusters of a qcow2.')),
    cfg.ListOpt('enabled_image_services',
                default=BUILTIN_IMAGE_SERVICES,
                help=_('URL schemes whose image service drivers may be '
                       'loaded. Each scheme is the name of an entry point '
                       'in the "ironic_images.image_services" namespace; a '
                       'third-party driver is enabled by installing its '
                       'package and adding its scheme here. A bare image '
                       'UUID or a glance:// href uses "glance". Default: '
                       '%s.') % ', '.join(BUILTIN_IMAGE_SERVICES)),
    cfg.BoolOpt('allow_md5_checksum',
                default=False,
                help=_('Accept md5 checksums (a bare 32-digit value or '
                       'md5:VALUE, and Glance images that only carry an md5 '
                       'checksum). md5 does not protect against a crafted '
                       'image. Ironic equivalent: '
                       '[agent]allow_md5_checksum. Default: False.')),
]


def register_opts(conf):
    sharing.register_opts(conf, opts)


def list_opts():
    return 'DEFAULT', opts
