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

"""Images fetched once for a block of work, as in Cinder."""

import contextlib

from ironic_images.common import tempfiles
from ironic_images.fetch import fetcher


class TemporaryImages:
    """Images fetched once for a block of work, as in Cinder.

    A caller fetches an image with :meth:`fetch` to inspect it before
    deciding what to do; :func:`fetch_to_volume_format` called inside the
    block for the same user and image uses that file instead of
    downloading again.

    :param image_service: what the images belong to (any object; Cinder
        passes its Glance service), or None.
    """

    _default = None

    def __init__(self, image_service=None):
        self.temporary_images = {}
        self.image_service = image_service

    @classmethod
    def for_image_service(cls, image_service):
        """Return the registry of ``image_service``, made on first use.

        :param image_service: any object that accepts attributes, or None
            for the process-wide registry.
        :returns: a :class:`TemporaryImages`; a subclass (a host's) shares
            the registries of this class.
        """
        if image_service is None:
            if TemporaryImages._default is None:
                TemporaryImages._default = cls()
            return TemporaryImages._default
        instance = getattr(image_service, 'temp_images', None)
        if not isinstance(instance, TemporaryImages):
            instance = cls(image_service)
            image_service.temp_images = instance
        return instance

    @classmethod
    @contextlib.contextmanager
    def fetch(cls, image_service, context, image_href, suffix='',
              **kwargs):
        """Fetch an image to a temp file for the length of a block.

        :param image_service: as :meth:`for_image_service`.
        :param context: the request context, or None.
        :param image_href: the image.
        :param suffix: the end of the temp file's name.
        :param kwargs: keyword arguments of :func:`fetch`.
        :returns: a context manager yielding the path of the verified,
            inspected (not converted) image.
        :raises: as :func:`fetch`.
        """
        registries = {cls.for_image_service(image_service),
                      cls.for_image_service(None)}
        user = _user(context)
        with tempfiles.temporary_file(prefix='image_fetch_',
                                      suffix=suffix) as path:
            fetcher.fetch_verify_image(context, image_href, path,
                                       **kwargs)
            for registry in registries:
                registry.temporary_images.setdefault(
                    user, {})[image_href] = path
            try:
                yield path
            finally:
                for registry in registries:
                    registry.temporary_images.get(user, {}).pop(
                        image_href, None)

    def get(self, context, image_href):
        """The path of an image fetched in an open block, or None.

        :param context: the request context (its user), or None.
        :param image_href: the image.
        :returns: the path or None.
        """
        return self.temporary_images.get(_user(context), {}).get(image_href)


def _user(context):
    return getattr(context, 'user_id', None)
