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

"""Credentials for image services that a node or the config supplies."""

from ironic_images.conf import CONF

PULL_SECRET = 'image_pull_secret'


def _pull_secret(info):
    secret = (info or {}).get(PULL_SECRET)
    if secret:
        # A pull secret is a pre-shared secret presented like Basic auth
        # with an empty user name; the OCI client decodes the forms it can
        # take (user:password, a docker "auth" value, a bare token).
        return {'username': '', 'password': secret}
    return None


def get_image_service_auth_override(node, permit_user_auth=True):
    """Collect the credentials to present to an image service for a node.

    Looked up in order: the node's ``instance_info['image_pull_secret']``
    (only when ``permit_user_auth``, since a user sets it), its
    ``driver_info['image_pull_secret']`` (set by an administrator), then
    ``[http]user``/``[http]password`` when ``[http]auth_strategy`` is
    ``http_basic``.

    :param node: any object with ``instance_info`` and ``driver_info``
        dicts (an Ironic node works).
    :param permit_user_auth: whether user-supplied credentials are allowed.
    :returns: a dict with ``username`` and ``password`` keys, or None.
    """
    credentials = None
    if permit_user_auth:
        credentials = _pull_secret(getattr(node, 'instance_info', None))
    if credentials is None:
        credentials = _pull_secret(getattr(node, 'driver_info', None))
    if credentials is None and CONF.http.auth_strategy == 'http_basic':
        credentials = {'username': CONF.http.user,
                       'password': CONF.http.password}
    return credentials
