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

"""Keep secrets out of log lines and exception messages."""

import re
import urllib.parse

from oslo_utils import strutils

MASK = '***'

# Query parameters that authorise a request by themselves: signed and
# temporary URLs (Swift temp_url_sig, S3 X-Amz-Signature/Credential, Azure
# sig), tokens and keys. oslo's mask_password knows "password=" and
# "token=" but not these.
_SECRET_QUERY_KEY = re.compile(
    r'sig|signature|token|secret|password|passwd|credential|key|auth',
    re.IGNORECASE)


def mask_href(image_href):
    """Return an href fit for a log line or an exception message.

    The password of a ``user:password@`` userinfo and the values of
    query parameters that look like credentials are replaced with ``***``;
    the rest of the text is passed through
    :func:`oslo_utils.strutils.mask_password`.

    :param image_href: any string, a URL or not.
    :returns: the masked string.
    """
    text = str(image_href)
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        return strutils.mask_password(text)
    netloc = parts.netloc
    if '@' in netloc:
        userinfo, _sep, hostport = netloc.rpartition('@')
        user = userinfo.partition(':')[0]
        netloc = '%s:%s@%s' % (user, MASK, hostport)
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_QUERY_KEY.search(key) for key, _value in pairs):
            query = '&'.join(
                '%s=%s' % (key, MASK if _SECRET_QUERY_KEY.search(key)
                           else value)
                for key, value in pairs)
    if netloc != parts.netloc or query != parts.query:
        text = urllib.parse.urlunsplit(
            (parts.scheme, netloc, parts.path, query, parts.fragment))
    return strutils.mask_password(text)


def mask_text(text):
    """Mask credentials in free text: URLs in it and key=value secrets.

    :param text: a message, possibly carrying URLs with credentials.
    :returns: the masked message.
    """
    text = _URL.sub(lambda match: mask_href(match.group(0)),
                    strutils.mask_password(str(text)))
    # Paths with a query but no scheme, as urllib3 puts them in messages.
    return _SECRET_QUERY_PARAM.sub(r'\1%s' % MASK, text)


_URL = re.compile(r'[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\'"<>]+')
_SECRET_QUERY_PARAM = re.compile(
    r'([?&][^=&\s]*(?:%s)[^=&\s]*=)[^&\s\'"<>]+' % _SECRET_QUERY_KEY.pattern,
    re.IGNORECASE)
