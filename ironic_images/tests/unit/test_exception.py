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

"""Tests of the exception hierarchy: messages, masking, classes."""

from ironic_images import exception
from ironic_images.tests import base

SECRET_HREF = 'https://alice:s3cr3t@images.example.com/x.img'
SIGNED_HREF = ('https://swift.example.com/v1/AUTH_a/c/x.img'
               '?temp_url_sig=deadbeefcafe&temp_url_expires=1700000000')
TOKEN_HREF = 'https://images.example.com/x.img?token=tok3n&format=raw'


class MessageTestCase(base.TestCase):

    def test_message_from_kwargs(self):
        exc = exception.ImageDownloadFailed(image_href='http://h/x.img',
                                            reason='connection reset')
        self.assertEqual('Failed to download image http://h/x.img, '
                         'reason: connection reset', str(exc))
        self.assertEqual({'image_href': 'http://h/x.img',
                          'reason': 'connection reset'}, exc.kwargs)

    def test_explicit_message_wins(self):
        exc = exception.ImageNotFound('just this', image_href='http://h/x')
        self.assertEqual('just this', str(exc))
        self.assertEqual('http://h/x', exc.kwargs['image_href'])

    def test_missing_kwargs_render_unknown(self):
        exc = exception.ImageRefValidationFailed()
        self.assertEqual('Validation of image href unknown failed, '
                         'reason: unknown', str(exc))

    def test_one_missing_kwarg_renders_unknown(self):
        exc = exception.ImageChecksumError(image_href='file:///x',
                                           algorithm='sha256',
                                           expected='ab')
        self.assertEqual('Checksum of image file:///x does not match: '
                         'expected sha256 ab, got unknown', str(exc))

    def test_missing_numeric_kwarg_renders_unknown(self):
        # _msg_fmt uses %(required_mib)d: a missing one must still render
        # as "unknown" inside the normal message, not switch to a dump.
        exc = exception.InsufficientDiskSpace(path='/var/tmp',
                                              image_href='http://h/x',
                                              free_mib=5)
        self.assertIn('Not enough free space in /var/tmp', str(exc))
        self.assertIn('unknown', str(exc))
        self.assertIn('5 MiB free', str(exc))

    def test_numeric_kwargs(self):
        exc = exception.InsufficientDiskSpace(path='/var/tmp',
                                              image_href='http://h/x',
                                              required_mib=100, free_mib=5)
        self.assertEqual('Not enough free space in /var/tmp for image '
                         'http://h/x: 100 MiB needed, 5 MiB free.', str(exc))
        self.assertEqual(507, exc.code)

    def test_wrongly_typed_kwarg_still_gives_a_message(self):
        class Counted(exception.IronicImagesException):
            _msg_fmt = '%(count)d images at %(image_href)s'

        exc = Counted(count='many', image_href=SECRET_HREF)
        text = str(exc)
        self.assertIn('Counted', text)
        self.assertIn('count=many', text)
        self.assertIn('alice:***@images.example.com', text)
        self.assertNotIn('s3cr3t', text)
        self.assertEqual('3 images at http://h/x',
                         str(Counted(count=3, image_href='http://h/x')))

    def test_code(self):
        self.assertEqual(400, exception.ImageRefValidationFailed().code)
        self.assertEqual(404, exception.ImageNotFound().code)
        self.assertEqual(401,
                         exception.ImageServiceAuthenticationRequired().code)
        self.assertEqual(429, exception.ImageHostRateLimitFailure().code)
        self.assertEqual(500, exception.IronicImagesException().code)
        self.assertEqual(418, exception.ImageNotFound(code=418).code)


class MaskingTestCase(base.TestCase):

    def test_userinfo_password_masked(self):
        exc = exception.ImageDownloadFailed(image_href=SECRET_HREF,
                                            reason='boom')
        self.assertNotIn('s3cr3t', str(exc))
        self.assertIn('alice:***@images.example.com/x.img', str(exc))
        self.assertNotIn('s3cr3t', exc.kwargs['image_href'])
        self.assertEqual('https://alice:***@images.example.com/x.img',
                         exc.kwargs['image_href'])

    def test_temp_url_sig_masked(self):
        exc = exception.ImageNotFound(image_href=SIGNED_HREF, reason='404')
        self.assertNotIn('deadbeefcafe', str(exc))
        self.assertNotIn('deadbeefcafe', exc.kwargs['image_href'])
        self.assertIn('temp_url_sig=***', str(exc))
        # Parameters that are not secrets stay readable.
        self.assertIn('temp_url_expires=1700000000', str(exc))

    def test_token_masked(self):
        exc = exception.ImageNotAuthorized(image_href=TOKEN_HREF,
                                           reason='403')
        self.assertNotIn('tok3n', str(exc))
        self.assertNotIn('tok3n', exc.kwargs['image_href'])
        self.assertIn('format=raw', str(exc))

    def test_other_href_kwargs_masked(self):
        exc = exception.ImageChecksumURLNotSupported(
            checksum_url='https://bob:pw123@h/SHA256SUMS',
            image_href=TOKEN_HREF, reason='nope')
        self.assertNotIn('pw123', str(exc))
        self.assertNotIn('pw123', exc.kwargs['checksum_url'])
        self.assertNotIn('tok3n', str(exc))

    def test_secret_in_reason_masked_in_message(self):
        exc = exception.ImageDownloadFailed(
            image_href='http://h/x',
            reason='GET %s failed' % SECRET_HREF)
        self.assertNotIn('s3cr3t', str(exc))

    def test_secret_in_explicit_message_masked(self):
        exc = exception.ImageDownloadFailed('cannot read %s' % SIGNED_HREF)
        self.assertNotIn('deadbeefcafe', str(exc))
        self.assertIn('temp_url_sig=***', str(exc))

    def test_href_without_secret_unchanged(self):
        href = 'https://images.example.com/a/b.qcow2?version=3'
        exc = exception.ImageNotFound(image_href=href, reason='gone')
        self.assertEqual(href, exc.kwargs['image_href'])
        self.assertIn(href, str(exc))


class HierarchyTestCase(base.TestCase):

    def test_everything_is_ours(self):
        for name in ('ImageRefValidationFailed', 'ImageRefIsARedirect',
                     'ImageDownloadFailed', 'ImageNotFound',
                     'ImageNotAuthorized',
                     'ImageServiceAuthenticationRequired',
                     'ImageChecksumError', 'ImageChecksumAlgorithmFailure',
                     'ImageChecksumURLNotSupported', 'OciImageNotSpecific',
                     'OciImageTagNotFound', 'TemporaryFailure',
                     'ImageHostRateLimitFailure', 'ImageUnacceptable',
                     'InvalidImage', 'ImageConvertFailed',
                     'InsufficientDiskSpace', 'UnknownImageService'):
            cls = getattr(exception, name)
            self.assertTrue(issubclass(cls, exception.IronicImagesException),
                            name)
            self.assertTrue(issubclass(cls, Exception), name)

    def test_subclasses(self):
        pairs = [
            (exception.ImageChecksumError, exception.ImageDownloadFailed),
            (exception.UnknownImageService,
             exception.ImageRefValidationFailed),
            (exception.ImageRefIsARedirect,
             exception.ImageRefValidationFailed),
            (exception.OciImageNotSpecific,
             exception.ImageRefValidationFailed),
            (exception.OciImageTagNotFound, exception.ImageNotFound),
            (exception.ImageServiceAuthenticationRequired,
             exception.ImageNotAuthorized),
            (exception.ImageHostRateLimitFailure,
             exception.TemporaryFailure),
            (exception.InvalidImage, exception.ImageUnacceptable),
        ]
        for sub, parent in pairs:
            self.assertTrue(issubclass(sub, parent),
                            '%s is not a %s' % (sub.__name__,
                                                parent.__name__))

    def test_unrelated(self):
        self.assertFalse(issubclass(exception.ImageChecksumError,
                                    exception.ImageRefValidationFailed))
        self.assertFalse(issubclass(exception.ImageNotFound,
                                    exception.ImageDownloadFailed))

    def test_catch_by_parent(self):
        def fail():
            raise exception.ImageChecksumError(image_href='file:///x',
                                               algorithm='sha256',
                                               expected='a', actual='b')
        exc = self.assertRaises(exception.ImageDownloadFailed, fail)
        self.assertIsInstance(exc, exception.ImageChecksumError)


class HostCatchesTestCase(base.TestCase):
    """The classes fit what Ironic 39's callers catch (see the docs)."""

    def test_ironic_hierarchy(self):
        # Ironic 39's own bases of the classes of the same name.
        pairs = [
            (exception.ImageChecksumError, exception.InvalidImage),
            (exception.ImageChecksumAlgorithmFailure,
             exception.InvalidImage),
            (exception.ImageChecksumURLNotSupported, exception.InvalidImage),
            (exception.OciImageNotSpecific, exception.InvalidImage),
            (exception.ImageServiceAuthenticationRequired,
             exception.ImageUnacceptable),
            (exception.ImageHostRateLimitFailure,
             exception.TemporaryFailure),
            (exception.OciImageTagNotFound, exception.ImageNotFound),
        ]
        for sub, parent in pairs:
            self.assertTrue(issubclass(sub, parent),
                            '%s is not a %s' % (sub.__name__,
                                                parent.__name__))

    def test_a_checksum_mismatch_is_caught_as_an_unacceptable_image(self):
        def fail():
            raise exception.ImageChecksumError(image_href='file:///x',
                                               algorithm='sha256',
                                               expected='a', actual='b')
        for parent in (exception.InvalidImage, exception.ImageUnacceptable,
                       exception.ImageDownloadFailed):
            self.assertRaises(parent, fail)
        # Not a refusal of the request: the server sent other bytes.
        self.assertEqual(500, exception.ImageChecksumError().code)

    def test_every_failure_of_validate_href_is_a_validation_failure(self):
        # Ironic's callers catch ImageRefValidationFailed for any answer
        # that is not 200: a 401, and a 5xx or 429 that persists.
        self.assertTrue(issubclass(
            exception.ImageServiceAuthenticationRequired,
            exception.ImageRefValidationFailed))
        unavailable = exception.validation_failure(
            exception.TemporaryFailure(image_href='https://u:pw@h/x',
                                       reason='HTTP 500 after 4 attempts'))
        self.assertIsInstance(unavailable, exception.ImageRefUnavailable)
        self.assertIsInstance(unavailable, exception.TemporaryFailure)
        self.assertIsInstance(unavailable,
                              exception.ImageRefValidationFailed)
        self.assertEqual(503, unavailable.code)
        self.assertEqual('Temporary failure while accessing '
                         'https://u:***@h/x, retry later: HTTP 500 after 4 '
                         'attempts', str(unavailable))
        limited = exception.validation_failure(
            exception.ImageHostRateLimitFailure(image_href='https://h/x',
                                                reason='HTTP 429'))
        self.assertIsInstance(limited, exception.ImageRefRateLimited)
        self.assertIsInstance(limited, exception.ImageHostRateLimitFailure)
        self.assertIsInstance(limited, exception.ImageRefValidationFailed)
        self.assertEqual(429, limited.code)
        self.assertEqual('https://h/x', limited.kwargs['image_href'])

    def test_a_validation_failure_is_kept(self):
        error = exception.ImageRefUnavailable(image_href='h', reason='r')
        self.assertIs(error, exception.validation_failure(error))

    def test_temporary_failures_are_not_validation_failures(self):
        # A download that fails for a while is not a bad href.
        self.assertFalse(issubclass(exception.TemporaryFailure,
                                    exception.ImageRefValidationFailed))
        self.assertFalse(issubclass(exception.ImageHostRateLimitFailure,
                                    exception.ImageRefValidationFailed))


class RedirectTestCase(base.TestCase):

    def test_redirect_url_attribute(self):
        exc = exception.ImageRefIsARedirect(
            image_href='http://h/x.img', redirect_url='http://h2/y.img')
        self.assertEqual('http://h2/y.img', exc.redirect_url)
        self.assertIn('http://h/x.img', str(exc))
        self.assertIn('http://h2/y.img', str(exc))
        self.assertIsInstance(exc, exception.ImageRefValidationFailed)

    def test_redirect_url_kept_whole_for_the_caller(self):
        # The caller records the target to use it: the attribute is the
        # real URL, while the message and kwargs are masked.
        target = 'https://u:pw9@h2/y.img?temp_url_sig=abcdef'
        exc = exception.ImageRefIsARedirect(image_href='http://h/x.img',
                                            redirect_url=target)
        self.assertEqual(target, exc.redirect_url)
        self.assertNotIn('pw9', str(exc))
        self.assertNotIn('abcdef', str(exc))
        self.assertNotIn('pw9', exc.kwargs['redirect_url'])
        self.assertNotIn('abcdef', exc.kwargs['redirect_url'])

    def test_redirect_message_text_intact(self):
        exc = exception.ImageRefIsARedirect(
            image_href='http://h/x.img',
            redirect_url='http://h2/y.img?token=abc')
        self.assertEqual('Image href http://h/x.img redirects to '
                         'http://h2/y.img?token=***; redirects are not '
                         'followed ([http]allow_redirects is False).',
                         str(exc))

    def test_no_redirect_url(self):
        exc = exception.ImageRefIsARedirect(image_href='http://h/x.img')
        self.assertIsNone(exc.redirect_url)
        self.assertIn('unknown', str(exc))
