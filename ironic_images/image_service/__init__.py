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

"""Choose and load the image service driver for an href.

Each URL scheme is a driver registered in the entry-point namespace
``ironic_images.image_services`` under the scheme's name, and may be loaded
only when it is listed in ``[DEFAULT]enabled_image_services``.
"""

import functools
import importlib.metadata
import typing
import urllib.parse

from oslo_log import log as logging
from oslo_utils import uuidutils
import stevedore

from ironic_images._i18n import _
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.image_service import auth
from ironic_images.image_service import base

LOG = logging.getLogger(__name__)

NAMESPACE = 'ironic_images.image_services'
GLANCE_SCHEME = 'glance'
OCI_SCHEME = 'oci'

# Re-exported: part of the public API of this package.
get_image_service_auth_override = auth.get_image_service_auth_override


def image_scheme(image_href: str) -> str:
    """Return the scheme that serves an href, lower-cased.

    :param image_href: an image reference.
    :returns: the URL scheme; ``glance`` for a bare UUID.
    :raises: UnknownImageService (an ImageRefValidationFailed) if the
        href has no scheme or is not a valid URL.
    """
    href = str(image_href).strip()
    if uuidutils.is_uuid_like(href):
        return GLANCE_SCHEME
    try:
        scheme = urllib.parse.urlsplit(href).scheme.lower()
    except ValueError as error:
        # e.g. an unbalanced "[" in the host part.
        raise exception.UnknownImageService(
            image_href=href, reason=_('it is not a valid URL: %s') % error)
    if not scheme:
        raise exception.UnknownImageService(
            image_href=href,
            reason=_('it has no URL scheme and is not an image UUID'))
    return scheme


def is_container_registry_url(image_href: typing.Any) -> bool:
    """Tell whether an href names an image in an OCI container registry.

    :param image_href: an image reference.
    :returns: True for ``oci://`` hrefs, False for anything else.
    """
    return (isinstance(image_href, str)
            and image_href.strip().lower().startswith(OCI_SCHEME + '://'))


@functools.lru_cache(maxsize=None)
def _driver_class(scheme):
    # A scheme nobody installed is answered here: asked for it, stevedore
    # would log a warning of its own, and its only switch for that
    # (warn_on_missing_entrypoint) is deprecated.
    if not importlib.metadata.entry_points(group=NAMESPACE, name=scheme):
        raise _LoadError(_('no driver is installed for it (no entry point '
                           'named "%(scheme)s" in namespace %(ns)s)') % {
            'scheme': scheme, 'ns': NAMESPACE})
    failures = []

    def _on_load_failure(_manager, entrypoint, error):
        failures.append((entrypoint, error))

    try:
        manager = stevedore.DriverManager(
            NAMESPACE, scheme, invoke_on_load=False,
            on_load_failure_callback=_on_load_failure)
    except stevedore.exception.NoMatches:
        if not failures:
            # Gone between the two looks: uninstalled meanwhile.
            raise _LoadError(_('no driver is installed for it'))
        entrypoint, error = failures[0]
        raise _LoadError(
            _('its driver %(target)s failed to load: %(error)s') % {
                'target': getattr(entrypoint, 'value', entrypoint),
                'error': error})
    except stevedore.exception.MultipleMatches:
        raise _LoadError(_('several installed packages register a driver '
                           'for it'))
    return manager.driver


class _LoadError(Exception):
    """A driver could not be loaded; its message is the reason."""


def get_image_service(image_href: str, client: typing.Any = None,
                      context: typing.Any = None
                      ) -> base.BaseImageService:
    """Return the image service driver for an href.

    :param image_href: the image reference: ``scheme://...``, or a bare
        image UUID for Glance.
    :param client: a preconfigured client, passed to the driver (Glance).
    :param context: the request context, passed to the driver (Glance).
    :raises: UnknownImageService (an ImageRefValidationFailed) naming the
        scheme and why when the scheme is disabled, no driver is installed
        for it, or its driver fails to load.
    :returns: an instance of the scheme's
        :class:`ironic_images.image_service.base.BaseImageService` driver.
    """
    scheme = image_scheme(image_href)
    enabled = [name.lower() for name in CONF.enabled_image_services]
    if scheme not in enabled:
        raise exception.UnknownImageService(
            image_href=image_href,
            reason=_('scheme "%(scheme)s" is not in '
                     '[DEFAULT]enabled_image_services (%(enabled)s)') % {
                'scheme': scheme, 'enabled': ', '.join(enabled)})
    try:
        driver_class = _driver_class(scheme)
    except _LoadError as error:
        raise exception.UnknownImageService(
            image_href=image_href,
            reason=_('scheme "%(scheme)s": %(reason)s') % {
                'scheme': scheme, 'reason': error})
    LOG.debug('Using image service %(cls)s for scheme %(scheme)s',
              {'cls': driver_class.__name__, 'scheme': scheme})
    return driver_class(client=client, context=context)
