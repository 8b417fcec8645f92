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

"""Checksum values, algorithms and verification.

A checksum is given as ``algo:hex`` (``sha256:ab12...``) or as bare hex,
whose algorithm is told by its length (64: sha256, 128: sha512, 32: md5
when [DEFAULT]allow_md5_checksum permits it) or by an explicit
``checksum_algo``. Values compare case-insensitively.
"""

import collections
import hashlib
import hmac
import os
import re
import string
import urllib.parse

from ironic_images._i18n import _
from ironic_images.conf import CONF
from ironic_images import exception

SUPPORTED_ALGORITHMS = ('md5', 'sha1', 'sha224', 'sha256', 'sha384',
                        'sha512')
_ALGORITHM_BY_LENGTH = {32: 'md5', 64: 'sha256', 128: 'sha512'}
_HEXDIGITS = frozenset(string.hexdigits)


class Checksum(collections.namedtuple('Checksum', ['algorithm', 'value'])):
    """An expected checksum: a hashlib algorithm name and lower-case hex."""

    __slots__ = ()

    def __str__(self):
        return '%s:%s' % self

    def new_hasher(self):
        """Return a fresh hashlib object for this checksum's algorithm."""
        return hashlib.new(self.algorithm)

    def matches(self, hexdigest):
        """Compare with a computed hex digest, in constant time.

        :param hexdigest: the computed digest, any case.
        :returns: True when equal.
        """
        return hmac.compare_digest(self.value, hexdigest.lower())

    def verify(self, hexdigest, image_href):
        """Raise unless a computed digest matches.

        :param hexdigest: the computed digest.
        :param image_href: the image, for the error message.
        :raises: ImageChecksumError on a mismatch.
        """
        if not self.matches(hexdigest):
            raise exception.ImageChecksumError(
                image_href=image_href, algorithm=self.algorithm,
                expected=self.value, actual=hexdigest.lower())


def _check_algorithm(algorithm, image_href):
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise exception.ImageChecksumAlgorithmFailure(
            algorithm=algorithm, image_href=image_href,
            reason=_('supported algorithms are %s')
            % ', '.join(SUPPORTED_ALGORITHMS))
    if algorithm == 'md5' and not CONF.allow_md5_checksum:
        raise exception.ImageChecksumAlgorithmFailure(
            algorithm=algorithm, image_href=image_href,
            reason=_('md5 is disabled by [DEFAULT]allow_md5_checksum'))


def parse_checksum(checksum, checksum_algo=None, image_href=None):
    """Parse an expected checksum.

    :param checksum: ``algo:hex`` or bare hex.
    :param checksum_algo: the algorithm of a bare-hex value; when None it is
        told by the length of the value.
    :param image_href: the image, for error messages.
    :returns: a :class:`Checksum`.
    :raises: InvalidChecksum when the value is not hex of the right length;
        ImageChecksumAlgorithmFailure for an unknown or disabled algorithm.
    """
    text = str(checksum).strip()
    if checksum_algo is not None and not isinstance(checksum_algo, str):
        # It may come from a server's metadata (Glance os_hash_algo).
        raise exception.ImageChecksumAlgorithmFailure(
            algorithm=checksum_algo, image_href=image_href,
            reason=_('an algorithm is named by a string'))
    algorithm, sep, value = text.rpartition(':')
    if sep:
        algorithm = algorithm.strip().lower()
        if checksum_algo and checksum_algo.lower() != algorithm:
            raise exception.InvalidChecksum(
                checksum=text, image_href=image_href,
                reason=_('it names algorithm %(named)s but %(given)s was '
                         'given') % {'named': algorithm,
                                     'given': checksum_algo})
    elif checksum_algo:
        algorithm = checksum_algo.strip().lower()
    else:
        algorithm = _ALGORITHM_BY_LENGTH.get(len(value))
        if algorithm is None:
            raise exception.InvalidChecksum(
                checksum=text, image_href=image_href,
                reason=_('a bare value must be 32, 64 or 128 hex digits '
                         '(md5, sha256, sha512), or be given as '
                         'algo:value'))
    value = value.strip().lower()
    if not value or not _HEXDIGITS.issuperset(value):
        raise exception.InvalidChecksum(
            checksum=text, image_href=image_href,
            reason=_('the value is not hexadecimal'))
    _check_algorithm(algorithm, image_href)
    if len(value) != hashlib.new(algorithm).digest_size * 2:
        raise exception.InvalidChecksum(
            checksum=text, image_href=image_href,
            reason=_('a %(algo)s value has %(n)d hex digits') % {
                'algo': algorithm,
                'n': hashlib.new(algorithm).digest_size * 2})
    return Checksum(algorithm, value)


def compute_file_checksum(path, algorithm='sha256'):
    """Compute the checksum of a file.

    :param path: the file.
    :param algorithm: a hashlib algorithm name.
    :returns: the lower-case hex digest.
    :raises: ImageChecksumAlgorithmFailure for an unknown algorithm;
        ImageDownloadFailed when the file cannot be read.
    """
    _check_algorithm(algorithm, path)
    try:
        with open(path, 'rb') as image:
            return hashlib.file_digest(image, algorithm).hexdigest()
    except OSError as error:
        raise exception.ImageDownloadFailed(image_href=path, reason=error)


CHECKSUM_URL_SCHEMES = ('http', 'https', 'file')
_GNU_LINE = re.compile(r'^([0-9a-fA-F]+)\s+\*?(.+)$')
_BSD_LINE = re.compile(r'^([A-Za-z0-9-]+)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$')
_BARE_HEX = re.compile(r'^[0-9a-fA-F]+$')
_BSD_NAMES = {'md5': 'md5', 'sha1': 'sha1', 'sha224': 'sha224',
              'sha256': 'sha256', 'sha384': 'sha384', 'sha512': 'sha512',
              'sha2-256': 'sha256', 'sha2-512': 'sha512'}


def is_checksum_url(checksum):
    """Tell whether a checksum value is the URL of a checksum file.

    :param checksum: the value given as a checksum.
    :returns: True for http://, https:// and file:// URLs.
    """
    return url_scheme(checksum) in CHECKSUM_URL_SCHEMES


def url_scheme(url):
    """The lower-case scheme of a URL; empty when it does not parse."""
    try:
        return urllib.parse.urlsplit(str(url).strip()).scheme.lower()
    except ValueError:
        return ''


def parse_checksum_file(text, image_href, checksum_algo=None,
                        checksum_url=None):
    """Find the checksum of an image in the text of a checksum file.

    Understands GNU coreutils lines (``HEX  name``, ``HEX *name``),
    BSD lines (``SHA256 (name) = HEX``), a file holding one bare value,
    blank lines and ``#`` comments. Lines are matched by the file name of
    the image, the last path segment of its href.

    :param text: the checksum file.
    :param image_href: the image whose checksum is wanted.
    :param checksum_algo: the algorithm of GNU-style values; by default
        told by their length.
    :param checksum_url: where the text came from, for messages.
    :returns: a :class:`Checksum`.
    :raises: InvalidChecksum when no line names the image (the message
        lists the names found), or the value is invalid.
    """
    try:
        path = urllib.parse.urlsplit(image_href).path
    except ValueError:
        # Not a URL that parses: its last segment is still its name.
        path = str(image_href)
    wanted = os.path.basename(urllib.parse.unquote(path))
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith('#')]
    if len(lines) == 1 and _BARE_HEX.match(lines[0]):
        return parse_checksum(lines[0], checksum_algo, image_href)
    names = []
    for line in lines:
        bsd = _BSD_LINE.match(line)
        if bsd:
            algorithm, name, value = bsd.groups()
            algorithm = _BSD_NAMES.get(algorithm.lower(), algorithm.lower())
        else:
            gnu = _GNU_LINE.match(line)
            if not gnu:
                continue
            (value, name), algorithm = gnu.groups(), checksum_algo
        name = name.strip()
        names.append(name)
        if os.path.basename(name) == wanted:
            return parse_checksum(value, algorithm, image_href)
    raise exception.InvalidChecksum(
        checksum=checksum_url or _('(checksum file)'), image_href=image_href,
        reason=_('no line for %(name)s; names found: %(names)s') % {
            'name': wanted, 'names': ', '.join(names) or _('none')})
