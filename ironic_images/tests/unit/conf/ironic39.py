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

"""Ironic 39's definitions of the options it shares names with.

The types and defaults of ``ironic/conf/default.py``, ``oci.py`` and
``glance.py`` in ironic 39.0.0 (help shortened), registered the way
Ironic registers them, for the unit tests that do not have Ironic
installed. The functional test ``test_in_ironic`` uses the real thing.
"""

import tempfile

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_config import types

DEFAULT_OPTS = [
    cfg.StrOpt('tempdir', default=tempfile.gettempdir(),
               help='Temporary working directory.'),
    cfg.StrOpt('webserver_verify_ca', default='True', mutable=True,
               help='CA certificates to be used for certificate '
                    'verification.'),
    cfg.IntOpt('webserver_connection_timeout', default=60,
               help='Connection timeout when accessing remote web '
                    'servers.'),
]

OCI_OPTS = [
    cfg.ListOpt('secure_cdn_registries',
                default=['registry.redhat.io', 'registry.access.redhat.com',
                         'docker.io', 'registry-1.docker.io'],
                help='Registries whose CDN gets the token.'),
    cfg.StrOpt('authentication_config', mutable=True,
               help='A docker config.json with credentials.'),
    cfg.BoolOpt('permit_fallback_to_http_transport', default=False,
                help='Allow plain HTTP.'),
    cfg.StrOpt('verify_ca', mutable=True,
               help='CA certificates for registries.'),
]

GLANCE_OPTS = [
    cfg.ListOpt('allowed_direct_url_schemes', default=[],
                item_type=types.String(choices=('file',)),
                help='URL schemes that can be downloaded directly.'),
    cfg.IntOpt('num_retries', default=0, mutable=True,
               help='Number of retries when downloading an image from '
                    'glance.'),
]

#: (group, name) of the ten options of Ironic 39 whose definitions differ
#: from the library's: registering the library's raised DuplicateOptError.
COLLIDING = [
    (None, 'webserver_connection_timeout'), (None, 'webserver_verify_ca'),
    (None, 'tempdir'), ('oci', 'secure_cdn_registries'),
    ('oci', 'authentication_config'), ('oci', 'verify_ca'),
    ('oci', 'permit_fallback_to_http_transport'), ('glance', 'num_retries'),
    ('glance', 'allowed_direct_url_schemes'), ('glance', 'service_type'),
]


def register_opts(conf):
    """Register them into ``conf`` as ``import ironic.conf`` does."""
    conf.register_opts(DEFAULT_OPTS)
    conf.register_opts(OCI_OPTS, group='oci')
    conf.register_opts(GLANCE_OPTS, group='glance')
    # ironic/conf/auth.py register_auth_opts(conf, 'glance', 'image').
    ks_loading.register_session_conf_options(conf, 'glance')
    ks_loading.register_auth_conf_options(conf, 'glance')
    ks_loading.register_adapter_conf_options(conf, 'glance')
    conf.set_default('service_type', 'image', group='glance')
