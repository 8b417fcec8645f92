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

import logging
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


def _mask_query(query):
    """Mask the values of credential-like parameters, keeping the rest."""
    return _QUERY_PARAM.sub(
        lambda m: m.group(0) if not _SECRET_QUERY_KEY.search(m.group(2))
        else '%s%s=%s' % (m.group(1), m.group(2), MASK), query)


def mask_href(image_href):
    """Return an href fit for a log line or an exception message.

    The password of a ``user:password@`` userinfo and the values of
    query parameters that look like credentials are replaced with ``***``;
    everything else is kept as it was written. Text that is not a URL is
    passed through :func:`oslo_utils.strutils.mask_password`.

    :param image_href: any string, a URL or not.
    :returns: the masked string.
    """
    text = str(image_href)
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:
        # Not a URL urllib.parse can split ("http://u:p@[::1/x"): its
        # userinfo and query are found by pattern instead.
        return _mask_query(strutils.mask_password(
            _USERINFO.sub(r'\1' + MASK + '@', text)))
    if not parts.scheme or not (parts.netloc or parts.path):
        return strutils.mask_password(text)
    netloc = parts.netloc
    if '@' in netloc:
        userinfo, _sep, hostport = netloc.rpartition('@')
        user = userinfo.partition(':')[0]
        netloc = '%s:%s@%s' % (user, MASK, hostport)
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, _mask_query(parts.query),
         parts.fragment))


def mask_text(text):
    """Mask credentials in free text: URLs in it and key=value secrets.

    :param text: a message, possibly carrying URLs with credentials.
    :returns: the masked message.
    """
    pieces = _URL.split(str(text))
    # re.split with one group alternates: text, URL, text, URL, ..., text.
    for index, piece in enumerate(pieces):
        if index % 2:
            pieces[index] = mask_href(piece)
        else:
            # Paths with a query but no scheme, as urllib3 writes them.
            pieces[index] = _mask_query(strutils.mask_password(piece))
    return ''.join(pieces)


def mask_hrefs_in(value):
    """A copy of a structure with every URL in its strings masked.

    For what is printed or returned to a person: the properties ``show()``
    returns, a cache listing, an inspection report. Strings that carry no
    ``scheme://`` are kept as they are, so checksums and names are not
    touched.

    :param value: dicts, lists and tuples of strings, numbers, dates...
    :returns: the same shape, each string with a URL in it passed through
        :func:`mask_text`.
    """
    if isinstance(value, str):
        return mask_text(value) if '://' in value else value
    if isinstance(value, dict):
        return {key: mask_hrefs_in(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [mask_hrefs_in(item) for item in value]
        # A named tuple takes its fields one by one.
        return (type(value)(*items) if hasattr(value, '_fields')
                else type(value)(items))
    return value


class MaskingFilter(logging.Filter):
    """Mask credentials in the records of a logger that is not ours.

    urllib3 logs every request line at DEBUG, query string included: a
    signed URL's signature or a token in a query would reach the logs.
    """

    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:
            return True  # the logging module reports a bad record itself
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


# Loggers of the libraries under ours that log URLs with their query.
THIRD_PARTY_LOGGERS = ('urllib3.connectionpool',)


def install_log_filters(names=THIRD_PARTY_LOGGERS):
    """Add a :class:`MaskingFilter` to each logger, once.

    :param names: logger names.
    """
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(item, MaskingFilter)
                   for item in logger.filters):
            logger.addFilter(MaskingFilter())


# The password of a scheme://user:password@ userinfo.
_USERINFO = re.compile(r'(://[^/?#@:\s]*:)[^/?#\s]*@')
# A URL, without the punctuation that commonly follows one in a sentence.
_URL = re.compile(r'([a-zA-Z][a-zA-Z0-9+.-]*://'
                  r'[^\s\'"<>]*[^\s\'"<>.,;:!?)\]}])')
_QUERY_PARAM = re.compile(r'(^|[?&])([^=&\s]+)=([^&\s\'"<>]*)')
