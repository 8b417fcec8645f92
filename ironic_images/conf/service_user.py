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

"""Options of the [service_user] group (service tokens).

The group has the name and options Nova, Cinder and Ironic give theirs, so
that the library embedded in one of them reads the service's own
``[service_user]`` section: ``send_service_user_token`` and the
keystoneauth1 session and auth options of the service user.
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from ironic_images._i18n import _
from ironic_images.conf import sharing

group = cfg.OptGroup(
    name='service_user', title='Service token options',
    help=_('The service user whose token is sent as X-Service-Token '
           'beside a user\'s token, when send_service_user_token is set.'))

opts = [
    cfg.BoolOpt('send_service_user_token',
                default=False,
                help=_('Send a token of the service user configured in '
                       'this group as X-Service-Token with every Glance '
                       'request made with a user\'s token (a request '
                       'context\'s auth_token). A user token can expire '
                       'during a long download; keystonemiddleware accepts '
                       'an expired user token sent beside a valid service '
                       'token whose user has one of its '
                       'service_token_roles (by default "service"). Set '
                       'auth_type and the auth options of that user in '
                       'this group. Nova, Cinder and Ironic equivalent: '
                       '[service_user]send_service_user_token. Default: '
                       'False.')),
]


def register_opts(conf):
    sharing.register_opts(conf, opts, group)
    sharing.register_opts(conf, ks_loading.get_session_conf_options(), group)
    sharing.register_auth_opts(conf, group)


def list_opts():
    """The group's name and options, keystoneauth ones included.

    :returns: ``(group name, [oslo_config.cfg.Opt])``.
    """
    ks_opts = (ks_loading.get_session_conf_options()
               + ks_loading.get_auth_common_conf_options()
               + ks_loading.get_auth_plugin_conf_options('password'))
    unique = {opt.dest: opt for opt in ks_opts}
    return group.name, opts + sorted(unique.values(),
                                     key=lambda opt: opt.dest)
