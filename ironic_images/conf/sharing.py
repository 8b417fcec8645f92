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

"""Registering options into a ``ConfigOpts`` a host service shares.

A service that imports ironic-images (an Ironic conductor, a Nova compute,
a Cinder volume service) may already have registered options of the same
names: Ironic 39 has ``[DEFAULT]webserver_verify_ca``, ``[oci]verify_ca``,
``[glance]num_retries``, ... oslo.config raises ``DuplicateOptError`` for
a second, different definition of a name. :func:`register_opts` keeps the
host's definition instead when it has the same type, so the operator sets
the value once and both read it; a same-named option of another type
means something else and is still an error.
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_config import types
from oslo_log import log as logging

LOG = logging.getLogger(__name__)


def _kind(opt):
    """What values an option holds: its type class (and item type's)."""
    def _class(value_type):
        # keystoneauth declares some options with the builtin str.
        return value_type if isinstance(value_type, type) else type(
            value_type)

    item_type = getattr(opt.type, 'item_type', None)
    return (_class(opt.type), opt.multi,
            None if item_type is None else _class(item_type))


def _parsed_by_host(opt):
    """Whether an option's values come from a function of the host's own.

    Nova registers the keystoneauth adapter's ``version``,
    ``min_version`` and ``max_version`` in ``[glance]`` as placeholders
    whose type is ``lambda x: None``: they always read None.
    """
    value_type = opt.type
    return not (isinstance(value_type, (type, types.ConfigType)))


def compatible(ours, theirs):
    """Tell whether a host's option can stand for one of the library's.

    The two must hold the same kind of value (the same oslo.config type
    and, for a list, item type; bounds, choices, defaults and help may
    differ: the host's apply), or the host's must be parsed by a function
    of its own (the host decides what it reads), and a secret of the
    library's must be a secret of the host's too, so that it stays out of
    the logs.

    :param ours: the library's :class:`oslo_config.cfg.Opt`.
    :param theirs: the host's option of the same name.
    :returns: True when the library may read the host's option.
    """
    return ((_kind(ours) == _kind(theirs) or _parsed_by_host(theirs))
            and (theirs.secret or not ours.secret))


def registered_opt(conf, name, group=None):
    """The option registered in ``conf`` under ``name``, or None.

    :param conf: a :class:`oslo_config.cfg.ConfigOpts`.
    :param name: the option's ``dest``.
    :param group: the group name, or None for ``[DEFAULT]``.
    :returns: the :class:`oslo_config.cfg.Opt`, or None.
    """
    try:
        # oslo.config has no public way to get a registered Opt back.
        return conf._get_opt_info(name, group)['opt']
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        return None


def register_opt(conf, opt, group=None):
    """Register one option, or keep the host's of the same name and type.

    :param conf: a :class:`oslo_config.cfg.ConfigOpts`.
    :param opt: the library's option.
    :param group: a group name or :class:`oslo_config.cfg.OptGroup`, or
        None for ``[DEFAULT]``.
    :returns: True when ``opt`` was registered, False when an equal or
        compatible option was already there.
    :raises: oslo_config.cfg.DuplicateOptError when the option already
        registered holds another kind of value.
    """
    try:
        return conf.register_opt(opt, group=group)
    except cfg.DuplicateOptError:
        group_name = getattr(group, 'name', group)
        theirs = registered_opt(conf, opt.dest, group_name)
        if theirs is None or not compatible(opt, theirs):
            raise
        LOG.debug('Option [%(group)s]%(name)s is already registered with '
                  'the same type; ironic-images reads that one',
                  {'group': group_name or 'DEFAULT', 'name': opt.dest})
        return False


def register_auth_opts(conf, group):
    """Register keystoneauth's auth_section and auth_type in a group.

    As :func:`keystoneauth1.loading.register_auth_conf_options` does,
    keeping the host's options: ``auth_type`` is registered in the
    ``auth_section`` when one is set. A plugin's own options are
    registered by keystoneauth as it loads the plugin.

    :param conf: a :class:`oslo_config.cfg.ConfigOpts`.
    :param group: an :class:`oslo_config.cfg.OptGroup`, registered.
    :raises: oslo_config.cfg.DuplicateOptError as :func:`register_opt`.
    """
    common = {opt.dest: opt
              for opt in ks_loading.get_auth_common_conf_options()}
    register_opt(conf, common['auth_section'], group)
    section = conf[group.name].auth_section or group.name
    register_opt(conf, common['auth_type'], section)


def register_opts(conf, opts, group=None):
    """Register a group's options with :func:`register_opt`.

    :param conf: a :class:`oslo_config.cfg.ConfigOpts`.
    :param opts: the options.
    :param group: an :class:`oslo_config.cfg.OptGroup` (registered first,
        unless the host has a group of that name), or None for
        ``[DEFAULT]``.
    :raises: oslo_config.cfg.DuplicateOptError as :func:`register_opt`.
    """
    if group is not None:
        conf.register_group(group)
    for opt in opts:
        register_opt(conf, opt, group)
