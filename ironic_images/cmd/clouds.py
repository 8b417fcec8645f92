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

"""A cloud of ``clouds.yaml``, as the OpenStack client finds it, for Glance.

The files are looked for where openstacksdk looks (``$OS_CLIENT_CONFIG_
FILE``, then ``clouds.yaml`` in the working directory,
``~/.config/openstack`` and ``/etc/openstack``); ``secure.yaml`` beside
them adds to each cloud (passwords kept apart). The cloud becomes the
``[glance]`` options keystoneauth loads: ``auth_type`` (default
``password``) and the plugin's ``auth`` options, ``region_name``,
``interface``, ``cacert``/``verify``/``cert``/``key``, and
``image_endpoint_override``. What else a cloud may say (``profile``,
vendor files, the ``OS_*`` variables without ``OS_CLOUD``) is not read:
openstacksdk would be a large dependency for a command that only reads
images.
"""

import os

from keystoneauth1 import loading as ks_loading
import yaml

from ironic_images.cmd import parser
from ironic_images.conf import CONF

GROUP = 'glance'
_NAMES = ('clouds.yaml', 'clouds.yml')
_SECURE_NAMES = ('secure.yaml', 'secure.yml')
# clouds.yaml keys -> [glance] options, as they are.
_DIRECT = {'region_name': 'region_name', 'cacert': 'cafile',
           'cert': 'certfile', 'key': 'keyfile',
           'image_endpoint_override': 'endpoint_override'}
_TLS_KEYS = ('cacert', 'verify')


def _directories(environ):
    home = os.path.expanduser('~')
    config_home = environ.get('XDG_CONFIG_HOME') or os.path.join(
        home, '.config')
    return [os.getcwd(), os.path.join(config_home, 'openstack'),
            '/etc/openstack']


def _find(names, variable, environ):
    if environ.get(variable):
        return [environ[variable]]
    return [os.path.join(directory, name)
            for directory in _directories(environ) for name in names]


def _load(path):
    try:
        with open(path, 'rb') as config_file:
            data = yaml.safe_load(config_file)
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as error:
        raise parser.UsageError('cannot read %s: %s' % (
            path, ' '.join(str(error).split())))
    clouds = data.get('clouds') if isinstance(data, dict) else None
    if not isinstance(clouds, dict):
        raise parser.UsageError('%s has no "clouds" mapping' % path)
    return clouds


def _merge(base, extra):
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def find_cloud(name, environ=None):
    """Read a cloud from the first ``clouds.yaml`` found.

    :param name: the cloud's name.
    :param environ: the environment; default ``os.environ``.
    :returns: the cloud's dict, ``secure.yaml`` merged in.
    :raises: UsageError when no file has it, or a file cannot be read.
    """
    environ = os.environ if environ is None else environ
    looked = _find(_NAMES, 'OS_CLIENT_CONFIG_FILE', environ)
    for path in looked:
        clouds = _load(path)
        if clouds is None:
            continue
        if not isinstance(clouds.get(name), dict):
            raise parser.UsageError('no cloud %r in %s (it has: %s)' % (
                name, path, ', '.join(sorted(clouds)) or 'none'))
        cloud = clouds[name]
        for secure_path in _find(_SECURE_NAMES, 'OS_CLIENT_SECURE_FILE',
                                 environ):
            secure = _load(secure_path)
            if secure is not None:
                if isinstance(secure.get(name), dict):
                    cloud = _merge(cloud, secure[name])
                break
        return cloud
    raise parser.UsageError('cloud %r: no clouds.yaml (looked for %s)' % (
        name, ', '.join(looked)))


def glance_options(cloud, name, keep_tls=False):
    """The ``[glance]`` options a cloud stands for.

    :param cloud: the cloud's dict.
    :param name: its name, for messages.
    :param keep_tls: leave out ``cacert`` and ``verify`` (the command
        line said otherwise).
    :returns: ``(auth_type, {option: value})``.
    :raises: UsageError for an unknown auth type or auth option.
    """
    auth_type = cloud.get('auth_type') or 'password'
    try:
        loader = ks_loading.get_plugin_loader(auth_type)
    except Exception as error:
        raise parser.UsageError('cloud %r: auth_type %s: %s' % (
            name, auth_type, error))
    known = {opt.dest for opt in loader.get_options()}
    options = {}
    for key, value in (cloud.get('auth') or {}).items():
        dest = key.replace('-', '_')
        if dest not in known:
            raise parser.UsageError(
                'cloud %r: auth_type %s takes no %r (it takes: %s)' % (
                    name, auth_type, key, ', '.join(sorted(known))))
        options[dest] = value
    for key, option in _DIRECT.items():
        if cloud.get(key) is not None and not (keep_tls
                                               and key in _TLS_KEYS):
            options[option] = cloud[key]
    if cloud.get('interface'):
        options['valid_interfaces'] = [cloud['interface']]
    if cloud.get('verify') is False and not keep_tls:
        options['insecure'] = True
    return auth_type, options


def use_cloud(name, overrides, keep_tls=False):
    """Point the ``[glance]`` options at a cloud of clouds.yaml.

    :param name: the cloud's name.
    :param overrides: the :class:`~ironic_images.cmd.sources.Overrides`
        of this run.
    :param keep_tls: as :func:`glance_options` has it.
    :raises: UsageError.
    """
    auth_type, options = glance_options(find_cloud(name), name, keep_tls)
    # keystoneauth registers a plugin's options when it loads it; they
    # must exist before they are set.
    registered = [opt for opt in
                  ks_loading.get_auth_plugin_conf_options(auth_type)
                  if CONF.register_opt(opt, group=GROUP)]
    overrides.registered(registered, GROUP)
    overrides('auth_type', auth_type, GROUP)
    for option, value in options.items():
        overrides(option, value, GROUP)
