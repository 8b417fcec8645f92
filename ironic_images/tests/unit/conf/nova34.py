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

"""Nova 34's definitions of the options it shares names with.

As ``nova/conf/base.py``, ``glance.py`` and ``utils.py``
(``register_ksa_opts``) of nova 34.0.0 register them (help shortened):
``[DEFAULT]tempdir``, ``[glance]num_retries``, the keystoneauth session
and adapter options with Nova's defaults, and placeholders for the
adapter's version options that always read None.
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

_DEPRECATED_KSA_OPTS = {
    'insecure': [cfg.DeprecatedOpt('api_insecure', group='glance')],
    'cafile': [cfg.DeprecatedOpt('ca_file', group='ssl')],
    'certfile': [cfg.DeprecatedOpt('cert_file', group='ssl')],
    'keyfile': [cfg.DeprecatedOpt('key_file', group='ssl')],
}
_VERSION_OPTS = ('version', 'min_version', 'max_version')


def register_opts(conf):
    """Register them into ``conf`` as ``import nova.conf`` does."""
    conf.register_opt(cfg.StrOpt('tempdir', help='The temporary directory.'))
    conf.register_opts([
        cfg.IntOpt('num_retries', default=3, min=0,
                   help='Retries of glance operations.'),
        cfg.BoolOpt('debug', default=False,
                    help='Debug logging of glanceclient.'),
    ], group='glance')
    ks_loading.register_session_conf_options(
        conf, 'glance', deprecated_opts=_DEPRECATED_KSA_OPTS)
    adapter_opts = [opt for opt in ks_loading.get_adapter_conf_options(
        include_deprecated=False, deprecated_opts=_DEPRECATED_KSA_OPTS)
        if opt.dest not in _VERSION_OPTS]
    cfg.set_defaults(adapter_opts, valid_interfaces=['internal', 'public'],
                     service_type='image')
    conf.register_opts(adapter_opts, group='glance')
    for name in _VERSION_OPTS:
        conf.register_opt(cfg.Opt(name, type=lambda value: None),
                          group='glance')
