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

"""A user's token, and the service token sent beside it.

A request made in a user's name carries the user's token. With
``[service_user]send_service_user_token`` it also carries a token of the
``[service_user]`` user as ``X-Service-Token`` (keystoneauth1's
:class:`~keystoneauth1.service_token.ServiceTokenAuthWrapper`), as Nova,
Cinder and Ironic send theirs: keystonemiddleware then accepts a user
token that expired during a long download, within its allow-expired
window, when the service token is valid and its user has a service role.
"""

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import service_token
from keystoneauth1 import token_endpoint
from oslo_config import cfg
from oslo_log import log as logging

from ironic_images._i18n import _
from ironic_images.conf import CONF
from ironic_images import exception

LOG = logging.getLogger(__name__)

GROUP = 'service_user'
_AUTHS = {}


def _conf_snapshot():
    """The [service_user] option values, as a hashable cache key."""
    return tuple(sorted((name, repr(CONF[GROUP][name]))
                        for name in CONF[GROUP]))


def sends_service_token():
    """Tell whether service tokens are to be sent.

    :returns: ``[service_user]send_service_user_token``.
    """
    return CONF[GROUP].send_service_user_token


def service_user_auth(image_href='glance://'):
    """The [service_user] auth plugin, when service tokens are sent.

    Made once for the current options, so that its token is fetched once
    and renewed only as it nears its expiry.

    :param image_href: the image it is wanted for, for messages.
    :returns: a keystoneauth auth plugin, or None when
        ``[service_user]send_service_user_token`` is False or no
        ``[service_user]auth_type`` is set (a warning is then logged and
        only the user's token is sent, as Nova does).
    :raises: ImageRefValidationFailed when the options are incomplete.
    """
    if not sends_service_token():
        return None
    key = _conf_snapshot()
    if key in _AUTHS:
        return _AUTHS[key]
    try:
        auth = ks_loading.load_auth_from_conf_options(CONF, GROUP)
    except (ks_exc.ClientException, cfg.Error) as error:
        raise exception.ImageRefValidationFailed(
            image_href=image_href,
            reason=_('the [service_user] options are incomplete or '
                     'conflict: %s') % error)
    if auth is None:
        LOG.warning('[service_user]send_service_user_token is set but '
                    '[service_user]auth_type is not: only the user\'s '
                    'token is sent')
    if len(_AUTHS) > 8:
        _AUTHS.clear()
    # Loading the plugin registers its options, which changes the
    # snapshot: the plugin is found under both.
    _AUTHS[key] = _AUTHS[_conf_snapshot()] = auth
    return auth


def user_auth(endpoint, token, image_href='glance://'):
    """The auth plugin of a request made with a user's token.

    :param endpoint: the endpoint the token may be sent to.
    :param token: the user's token.
    :param image_href: the image it is wanted for, for messages.
    :returns: a :class:`keystoneauth1.token_endpoint.Token`, wrapped with
        the service user's auth when service tokens are sent.
    :raises: ImageRefValidationFailed when the [service_user] options are
        incomplete.
    """
    auth = token_endpoint.Token(endpoint, token)
    service_auth = service_user_auth(image_href)
    if service_auth is None:
        return auth
    return service_token.ServiceTokenAuthWrapper(user_auth=auth,
                                                 service_auth=service_auth)
