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

"""The exceptions of ironic-images.

Every public function either succeeds or raises a subclass of
:class:`IronicImagesException`. Messages are made from a class-level
``_msg_fmt`` filled with the keyword arguments, and are always passed
through :func:`ironic_images.common.masking.mask_text`, so a URL carrying
credentials never reaches a log line through an exception.

The hierarchy fits the ``except`` clauses of the services that import the
library (see the per-host pages of the documentation): where Ironic's
callers catch a broader class than the one raised, the class has that one
among its bases too (a checksum mismatch is an ``InvalidImage``; any
failure of ``validate_href``, including a 401 and a 5xx that persists, is
an ``ImageRefValidationFailed``).
"""


from ironic_images._i18n import _
from ironic_images.common import masking


_HREF_KWARGS = ('image_href', 'redirect_url', 'checksum_url', 'url')


class _Unknowns(dict):
    """Format arguments that render a missing one as "unknown"."""

    def __missing__(self, key):
        return _('unknown')


class IronicImagesException(Exception):
    """Base of every exception this library raises.

    :param message: a complete message; when omitted, ``_msg_fmt`` is
        filled with ``kwargs``.
    :param kwargs: values for ``_msg_fmt`` (a missing one renders as
        "unknown"), also kept in ``self.kwargs`` with hrefs masked.
    """

    _msg_fmt = _('An unknown exception occurred.')
    code = 500

    def __init__(self, message=None, **kwargs):
        for key in _HREF_KWARGS:
            if kwargs.get(key) is not None:
                kwargs[key] = masking.mask_href(kwargs[key])
        self.kwargs = kwargs
        if 'code' in kwargs:
            self.code = kwargs['code']
        if not message:
            try:
                message = self._msg_fmt % _Unknowns(kwargs)
            except (TypeError, ValueError):
                # A wrongly typed argument must not hide the real error.
                message = '%s: %s' % (self.__class__.__name__, ', '.join(
                    '%s=%s' % item for item in sorted(kwargs.items())))
        super().__init__(masking.mask_text(message))


class ImageUnacceptable(IronicImagesException):
    _msg_fmt = _('Image %(image_href)s is unacceptable: %(reason)s')
    code = 400


class InvalidImage(ImageUnacceptable):
    _msg_fmt = _('Image %(image_href)s is not valid for use: %(reason)s')


class ImageRefValidationFailed(IronicImagesException):
    _msg_fmt = _('Validation of image href %(image_href)s failed, '
                 'reason: %(reason)s')
    code = 400


class UnknownImageService(ImageRefValidationFailed):
    _msg_fmt = _('No image service can handle image href %(image_href)s: '
                 '%(reason)s')


class ImageRefIsARedirect(ImageRefValidationFailed):
    _msg_fmt = _('Image href %(image_href)s redirects to %(redirect_url)s; '
                 'redirects are not followed ([http]allow_redirects is '
                 'False).')

    def __init__(self, message=None, **kwargs):
        super().__init__(message, **kwargs)
        self.redirect_url = kwargs.get('redirect_url')


class OciImageNotSpecific(ImageRefValidationFailed, InvalidImage):
    _msg_fmt = _('Image href %(image_href)s does not name one specific '
                 'artifact: %(reason)s')


class ImageDownloadFailed(IronicImagesException):
    _msg_fmt = _('Failed to download image %(image_href)s, reason: '
                 '%(reason)s')


class ImageChecksumError(ImageDownloadFailed, InvalidImage):
    _msg_fmt = _('Checksum of image %(image_href)s does not match: '
                 'expected %(algorithm)s %(expected)s, got %(actual)s')
    code = 500


class InvalidDestination(ImageDownloadFailed):
    _msg_fmt = _('Cannot write image %(image_href)s to %(path)s: '
                 '%(reason)s')
    code = 400


class InvalidChecksum(IronicImagesException):
    _msg_fmt = _('Checksum %(checksum)s given for image %(image_href)s is '
                 'not valid: %(reason)s')
    code = 400


class ImageChecksumAlgorithmFailure(InvalidImage):
    _msg_fmt = _('Checksum algorithm %(algorithm)s of image %(image_href)s '
                 'is not supported: %(reason)s')
    code = 400


class ImageChecksumURLNotSupported(InvalidImage):
    _msg_fmt = _('Checksum URL %(checksum_url)s of image %(image_href)s '
                 'is not supported: %(reason)s')
    code = 400


class ImageNotFound(IronicImagesException):
    _msg_fmt = _('Image %(image_href)s could not be found: %(reason)s')
    code = 404


class OciImageTagNotFound(ImageNotFound):
    _msg_fmt = _('Tag %(tag)s of image %(image_href)s could not be found; '
                 'available tags: %(tags)s')


class ImageNotAuthorized(IronicImagesException):
    _msg_fmt = _('Not authorized for image %(image_href)s: %(reason)s')
    code = 403


class ImageServiceAuthenticationRequired(ImageNotAuthorized,
                                         ImageRefValidationFailed,
                                         ImageUnacceptable):
    _msg_fmt = _('Image %(image_href)s requires authentication that was '
                 'not provided or was refused: %(reason)s')
    code = 401


class TemporaryFailure(IronicImagesException):
    _msg_fmt = _('Temporary failure while accessing %(image_href)s, retry '
                 'later: %(reason)s')
    code = 503


class ImageHostRateLimitFailure(TemporaryFailure):
    _msg_fmt = _('The host of image %(image_href)s keeps refusing requests '
                 'with 429 Too Many Requests: %(reason)s')
    code = 429


class ImageRefUnavailable(TemporaryFailure, ImageRefValidationFailed):
    """A temporary failure met while validating an href.

    Raised by ``validate_href`` and ``show`` when errors that may pass
    (5xx, connection failures) persist: a caller that retries catches
    TemporaryFailure, one that checks an href catches
    ImageRefValidationFailed.
    """

    _msg_fmt = TemporaryFailure._msg_fmt
    code = 503


class ImageRefRateLimited(ImageHostRateLimitFailure, ImageRefUnavailable):
    """429 Too Many Requests persisted while validating an href."""

    _msg_fmt = ImageHostRateLimitFailure._msg_fmt
    code = 429


def validation_failure(error):
    """The exception ``validate_href`` raises for a temporary failure.

    :param error: a :class:`TemporaryFailure`.
    :returns: ``error`` itself when it is an ImageRefValidationFailed
        already, else an :class:`ImageRefUnavailable` (an
        :class:`ImageRefRateLimited` for a 429) with its message.
    """
    if isinstance(error, ImageRefValidationFailed):
        return error
    cls = (ImageRefRateLimited
           if isinstance(error, ImageHostRateLimitFailure)
           else ImageRefUnavailable)
    kwargs = dict(error.kwargs)
    kwargs.pop('code', None)
    return cls(str(error), **kwargs)


class ImageConvertFailed(IronicImagesException):
    _msg_fmt = _('Conversion of image %(image_href)s failed: %(reason)s')


class ImageUploadFailed(IronicImagesException):
    _msg_fmt = _('Upload to image %(image_href)s failed: %(reason)s')


class InsufficientDiskSpace(IronicImagesException):
    _msg_fmt = _('Not enough free space in %(path)s for image '
                 '%(image_href)s: %(required_mib)s MiB needed, '
                 '%(free_mib)s MiB free.')
    code = 507


class ImageCacheError(IronicImagesException):
    _msg_fmt = _('Master-image cache %(path)s: %(reason)s')


class DestinationUndefined(ImageDownloadFailed):
    """A device or stream written in place was left half-written.

    Raised, instead of the error that stopped the write, once the first
    byte has reached a destination that is written in place (a block
    device, a pipe): its earlier contents are gone and the image is not
    whole. Each error class has a subclass here that is also this
    class, so a caller's ``except`` clause for either still catches it
    (see :func:`destination_undefined`). ``kwargs['cause']`` names the
    class of the original error.
    """

    _msg_fmt = _('Writing image %(image_href)s onto %(path)s failed after '
                 'the first byte was written; the contents of %(path)s '
                 'are undefined: %(reason)s')


class DestinationUndefinedChecksum(DestinationUndefined, ImageChecksumError):
    _msg_fmt = DestinationUndefined._msg_fmt


class DestinationUndefinedUnacceptable(DestinationUndefined,
                                       ImageUnacceptable):
    _msg_fmt = DestinationUndefined._msg_fmt


class DestinationUndefinedInvalid(DestinationUndefinedUnacceptable,
                                  InvalidImage):
    _msg_fmt = DestinationUndefined._msg_fmt


class DestinationUndefinedConvert(DestinationUndefined, ImageConvertFailed):
    _msg_fmt = DestinationUndefined._msg_fmt


# Most specific first: the first class the error is an instance of wins.
_UNDEFINED_OF = (
    (ImageChecksumError, DestinationUndefinedChecksum),
    (InvalidImage, DestinationUndefinedInvalid),
    (ImageUnacceptable, DestinationUndefinedUnacceptable),
    (ImageConvertFailed, DestinationUndefinedConvert),
)


def destination_undefined(error, path, image_href):
    """The error to raise when a write in place failed after its start.

    :param error: what stopped the write (any exception).
    :param path: the device or stream.
    :param image_href: the image.
    :returns: a :class:`DestinationUndefined` that is also an instance of
        the family of ``error`` (checksum, unacceptable, invalid image,
        conversion), or ``error`` itself when it already is one.
    """
    if isinstance(error, DestinationUndefined):
        return error
    cls = DestinationUndefined
    for family, undefined in _UNDEFINED_OF:
        if isinstance(error, family):
            cls = undefined
            break
    reason = str(error) or type(error).__name__
    return cls(image_href=image_href, path=path, reason=reason,
               cause=type(error).__name__)


class OperationNotSupported(IronicImagesException):
    _msg_fmt = _('%(operation)s is not supported for image %(image_href)s: '
                 '%(reason)s')
    code = 400
