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

"""Options of the [oci] group (oci:// container registries)."""

from oslo_config import cfg

from ironic_images._i18n import _
from ironic_images.conf import sharing

group = cfg.OptGroup(name='oci', title='OCI container registry options')

opts = [
    cfg.ListOpt('secure_cdn_registries',
                default=['registry.redhat.io', 'registry.access.redhat.com',
                         'docker.io', 'registry-1.docker.io'],
                help=_('Hosts that a registry\'s blob redirects may carry '
                       'the Authorization header to: the content delivery '
                       'networks that registries send their blobs from, '
                       'which want the registry\'s credentials. The '
                       'redirect target\'s host is matched, exactly or as '
                       'a domain ("example.com" or ".example.com" matches '
                       '"cdn.example.com", never "evilexample.com"); '
                       '"host:port" matches that port only. A redirect to '
                       'any other host is followed without the header. '
                       'Ironic\'s [oci]secure_cdn_registries, with the '
                       'same meaning and default.')),
    cfg.StrOpt('authentication_config',
               help=_('Path of a docker "config.json"-style file, '
                      '{"auths": {"HOST": {"auth": "BASE64(user:pass)"}}}, '
                      'with credentials per registry host. Used when '
                      'neither the caller nor the node supplies an '
                      'image_pull_secret.')),
    cfg.StrOpt('verify_ca',
               help=_('TLS verification for registries: "True", "False" '
                      '(insecure) or the path of a CA bundle. Unset, '
                      'registries are verified as [DEFAULT]'
                      'webserver_verify_ca says, so one CA bundle set '
                      'there serves web servers and registries alike. '
                      'Default: unset.')),
    cfg.BoolOpt('permit_fallback_to_http_transport',
                default=False,
                help=_('Allow falling back to plain HTTP when a registry '
                       'does not speak HTTPS. Insecure: meant for test '
                       'registries on a trusted network. Default: False.')),
    cfg.ListOpt('registry_mirrors',
                default=[],
                help=_('Mirrors tried before a registry host, as '
                       'ORIGIN=MIRROR items, e.g. '
                       '"quay.io=mirror.local:5000". Several items for one '
                       'origin are tried in the order given; the origin '
                       'itself is tried last.')),
]


def register_opts(conf):
    sharing.register_opts(conf, opts, group)


def list_opts():
    return group.name, opts
