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

"""The configuration of ironic-images, shared with the service it runs in.

Importing ironic-images registers no option. :data:`CONF` is the
configuration the library reads: oslo.config's global ``cfg.CONF`` unless
:func:`use` names another ``ConfigOpts``. The first time the library reads
it, every option of :data:`GROUP_MODULES` is registered there by
:func:`register_opts`, which keeps a host's option of the same name and
type (:mod:`ironic_images.conf.sharing`). A host service therefore
registers its own options first (``import ironic.conf`` does) and may call
:func:`use` with its ``ConfigOpts`` to have any conflict raised at start.
"""

import threading

from oslo_config import cfg

from ironic_images.conf import default
from ironic_images.conf import download
from ironic_images.conf import file
from ironic_images.conf import glance
from ironic_images.conf import http
from ironic_images.conf import image_cache
from ironic_images.conf import image_convert
from ironic_images.conf import image_format
from ironic_images.conf import oci
from ironic_images.conf import service_user

#: The modules of the option groups, in the order of the sample config.
#: Each has ``register_opts(conf)`` and ``list_opts()``, which returns
#: ``(group name, [options])``.
GROUP_MODULES = [
    default,
    file,
    http,
    oci,
    glance,
    image_format,
    image_convert,
    download,
    image_cache,
    service_user,
]


def register_opts(conf):
    """Register every option of ironic-images into ``conf``.

    An option the host has already registered under the same name, with
    the same type, is kept as it is (its default and help included) and
    read by the library. Registering twice is harmless.

    :param conf: an :class:`oslo_config.cfg.ConfigOpts`.
    :raises: oslo_config.cfg.DuplicateOptError when ``conf`` holds an
        option of the same name and another type.
    """
    for module in GROUP_MODULES:
        module.register_opts(conf)


def list_opts():
    """Every option, by group, for oslo-config-generator and the docs.

    :returns: a list of ``(group name, [oslo_config.cfg.Opt])`` tuples.
    """
    return [module.list_opts() for module in GROUP_MODULES]


class _LibraryConf:
    """The ``ConfigOpts`` the library reads, registered on first use.

    Every attribute, item and call goes to that ``ConfigOpts``, so the
    library's modules, oslo.config's test fixture and keystoneauth's
    loaders use it as they would the ``ConfigOpts`` itself.
    """

    _target = None
    _lock = threading.Lock()

    def _conf(self):
        target = self._target
        if target is None:
            with self._lock:
                if self._target is None:
                    register_opts(cfg.CONF)
                    self._target = cfg.CONF
                target = self._target
        return target

    def _use(self, conf):
        with self._lock:
            if conf is not None:
                register_opts(conf)
            self._target = conf

    def __getattr__(self, name):
        if name.startswith('__'):
            # Not an option: copy, pickle and the like probe for these.
            raise AttributeError(name)
        return getattr(self._conf(), name)

    def __setattr__(self, name, value):
        # The ConfigOpts's own attributes, such as default_config_files,
        # which oslo.config's test fixture sets and deletes.
        if name.startswith('_'):
            super().__setattr__(name, value)
        else:
            setattr(self._conf(), name, value)

    def __delattr__(self, name):
        if name.startswith('_'):
            super().__delattr__(name)
        else:
            delattr(self._conf(), name)

    def __getitem__(self, key):
        return self._conf()[key]

    def __contains__(self, key):
        return key in self._conf()

    def __iter__(self):
        return iter(self._conf())

    def __len__(self):
        return len(self._conf())

    def __call__(self, *args, **kwargs):
        return self._conf()(*args, **kwargs)

    def __repr__(self):
        return '<ironic-images configuration: %r>' % (
            self._target if self._target is not None else cfg.CONF)


#: The configuration every module of ironic-images reads.
CONF = _LibraryConf()


def use(conf=None):
    """Make ironic-images read ``conf``, registering its options there.

    A host service whose options live in oslo.config's global ``cfg.CONF``
    (Ironic, Nova and Cinder) need not call it: the library registers
    there on first use. Calling it at start-up, after the host registered
    its own options, raises a conflict then rather than at the first
    download.

    :param conf: an :class:`oslo_config.cfg.ConfigOpts`; None goes back to
        ``cfg.CONF``, registered on first use.
    :raises: oslo_config.cfg.DuplicateOptError when ``conf`` holds an
        option of the same name and another type.
    """
    CONF._use(conf)
