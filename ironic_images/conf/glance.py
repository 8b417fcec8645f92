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

"""Options of the [glance] group (Glance through keystoneauth1)."""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from ironic_images._i18n import _
from ironic_images.conf import sharing

group = cfg.OptGroup(name='glance', title='Glance image service options')

opts = [
    cfg.IntOpt('num_retries',
               default=3, min=0,
               help=_('Times a Glance request is retried after a '
                      'connection failure or a 429, 502, 503 or 504 answer '
                      'before TemporaryFailure is raised. Default: 3.')),
    cfg.ListOpt('allowed_direct_url_schemes',
                default=[],
                help=_('Schemes of an image\'s direct_url that may be read '
                       'directly instead of through the Glance API. Only '
                       '"file" is supported; such paths pass the same '
                       'checks as the file:// service ([file]'
                       'allowed_paths). Default: none.')),
]

_SERVICE_TYPE = 'image'


def _adapter_opts():
    # The default is set on the options themselves, not with
    # conf.set_default, which ConfigOpts.reset() (the config fixture of
    # every test) would forget.
    adapter_opts = ks_loading.get_adapter_conf_options(
        include_deprecated=False)
    cfg.set_defaults(adapter_opts, service_type=_SERVICE_TYPE)
    return adapter_opts


def register_opts(conf):
    sharing.register_opts(conf, opts, group)
    sharing.register_opts(conf, ks_loading.get_session_conf_options(), group)
    sharing.register_auth_opts(conf, group)
    sharing.register_opts(conf, _adapter_opts(), group)


def list_opts():
    """Options of the group, keystoneauth ones included, for the samples."""
    ks_opts = (ks_loading.get_session_conf_options()
               + ks_loading.get_auth_common_conf_options()
               + ks_loading.get_auth_plugin_conf_options('password')
               + _adapter_opts())
    unique = {opt.dest: opt for opt in ks_opts}
    return group.name, opts + sorted(unique.values(),
                                     key=lambda opt: opt.dest)
