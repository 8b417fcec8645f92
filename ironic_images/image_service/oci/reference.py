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

"""Parse ``oci://host[:port]/path/name[:tag|@digest]`` image URLs."""

import collections
import re
import urllib.parse

from ironic_images._i18n import _
from ironic_images import exception

_TAG = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$')
DIGEST = re.compile(r'^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$')
_REPOSITORY = re.compile(r'^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
                         r'(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$')


class OciReference(collections.namedtuple(
        'OciReference', ['host', 'repository', 'tag', 'digest'])):
    """A parsed ``oci://`` URL."""

    __slots__ = ()

    @property
    def reference(self):
        """The digest when there is one, else the tag."""
        return self.digest or self.tag

    def url(self, digest=None):
        """The ``oci://`` URL of this repository at a digest or as given."""
        if digest or self.digest:
            return 'oci://%s/%s@%s' % (self.host, self.repository,
                                       digest or self.digest)
        return 'oci://%s/%s:%s' % (self.host, self.repository, self.tag)


def parse_reference(image_href):
    """Parse an ``oci://`` URL.

    :param image_href: ``oci://host[:port]/path/name[:tag|@digest]``.
    :returns: an :class:`OciReference`; the tag is ``latest`` when
        neither a tag nor a digest is given.
    :raises: ImageRefValidationFailed naming what is wrong.
    """
    def invalid(reason):
        return exception.ImageRefValidationFailed(image_href=image_href,
                                                  reason=reason)

    try:
        parts = urllib.parse.urlsplit(str(image_href).strip())
    except ValueError as error:
        raise invalid(_('not a valid URL: %s') % error)
    if parts.scheme.lower() != 'oci':
        raise invalid(_('not an oci:// URL'))
    if not parts.netloc or '@' in parts.netloc:
        raise invalid(_('an oci:// URL needs a registry host and no '
                        'credentials in it'))
    if parts.query or parts.fragment:
        raise invalid(_('an oci:// URL may not carry a query or fragment'))
    path = parts.path.lstrip('/')
    digest = tag = None
    if '@' in path:
        path, _sep, digest = path.partition('@')
        digest = digest.lower()
        if not DIGEST.match(digest):
            raise invalid(_('the digest must be sha256:HEX or sha512:HEX'))
    else:
        name, sep, maybe_tag = path.rpartition(':')
        if sep and '/' not in maybe_tag:
            path, tag = name, maybe_tag
            if not _TAG.match(tag):
                raise invalid(_('%s is not a valid tag') % tag)
        else:
            tag = 'latest'
    if not _REPOSITORY.match(path):
        raise invalid(_('%s is not a valid repository name')
                      % (path or '""'))
    return OciReference(parts.netloc.lower(), path, tag, digest)
