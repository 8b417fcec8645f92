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

"""Options of the [http] group (the http:// and https:// image service)."""

from oslo_config import cfg

from ironic_images._i18n import _
from ironic_images.conf import sharing

group = cfg.OptGroup(name='http', title='HTTP(S) image service options')

opts = [
    cfg.StrOpt('auth_strategy',
               default='noauth',
               choices=[('noauth', _('no authentication')),
                        ('http_basic', _('HTTP Basic authentication with '
                                         '[http]user and [http]password'))],
               help=_('Authentication used for HTTP(S) image and checksum '
                      'requests. Credentials are sent to the host of the '
                      'href only, never to a redirect target on another '
                      'host. Ironic equivalent: '
                      '[deploy]image_server_auth_strategy. Default: '
                      'noauth.')),
    cfg.StrOpt('user',
               help=_('User name for auth_strategy = http_basic. Ironic '
                      'equivalent: [deploy]image_server_user.')),
    cfg.StrOpt('password',
               secret=True,
               help=_('Password for auth_strategy = http_basic. Ironic '
                      'equivalent: [deploy]image_server_password.')),
    cfg.BoolOpt('allow_redirects',
                default=True,
                help=_('Follow HTTP redirects (up to max_redirects). When '
                       'False, validating an href that redirects raises '
                       'ImageRefIsARedirect carrying the target URL so the '
                       'caller can record it. Default: True.')),
    cfg.IntOpt('max_redirects',
               default=5, min=0, max=30,
               help=_('Most redirects followed for one request; a longer '
                      'chain, or a loop, fails validation. Default: 5.')),
]


def register_opts(conf):
    sharing.register_opts(conf, opts, group)


def list_opts():
    return group.name, opts
