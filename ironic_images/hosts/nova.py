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

"""The Nova-style image API: one facade over every image service.

``get`` and ``download`` work for every enabled scheme (the driver comes
from :func:`ironic_images.image_service.get_image_service`); ``get_all``,
``create``, ``update`` and ``delete`` are Glance's, the only service that
can change images.

``download`` has one contract: with ``data`` it writes to that file
object, with ``dest_path`` it writes atomically to that path, with neither
it returns an iterator of bytes. Every byte an iterator yields has been
received but not yet verified: the driver's verification (a Glance
multihash, an OCI digest, a given checksum) runs after the last byte, and a
mismatch is raised from the iterator in place of its end. Only a consumer
that reaches the end (``StopIteration``) has verified data.
"""

import io
import queue
import threading
import weakref

from oslo_log import log as logging

from ironic_images._i18n import _
from ironic_images import exception
from ironic_images import image_service
from ironic_images.sink import destination

LOG = logging.getLogger(__name__)

GLANCE_HREF = image_service.GLANCE_SCHEME + '://'
# Chunks an iterator download keeps ahead of its consumer.
_ITERATOR_DEPTH = 4
# How often a blocked producer looks whether the consumer has gone.
_POLL_SECONDS = 0.5


class API:
    """Images by id or URI, the way Nova's ``nova.image.api.API`` has them.

    :param client: a preconfigured client passed to the drivers (a
        keystoneauth Adapter for Glance), or None.
    """

    def __init__(self, client=None):
        self.client = client

    def _service(self, context, id_or_uri):
        return image_service.get_image_service(id_or_uri, client=self.client,
                                               context=context)

    def get(self, context, id_or_uri, include_locations=False,
            show_deleted=True):
        """Return the properties of an image.

        :param context: an :class:`oslo_context.context.RequestContext`,
            or None.
        :param id_or_uri: an image UUID or any enabled scheme's href.
        :param include_locations: for Glance, include ``direct_url`` and
            ``locations``.
        :param show_deleted: accepted for Nova compatibility; the Glance v2
            API never shows deleted images.
        :returns: the driver's ``show`` dict: at least ``size``,
            ``updated_at`` and ``properties``. A Glance image is returned
            whatever its status (it has ``status``).
        :raises: UnknownImageService, ImageRefValidationFailed,
            ImageNotFound, ImageNotAuthorized, TemporaryFailure.
        """
        return self._service(context, id_or_uri).get_image(
            id_or_uri, include_locations=include_locations, context=context)

    def get_all(self, context, **kwargs):
        """List Glance images.

        :param context: a request context, or None.
        :param kwargs: filters and paging, as
            :meth:`ironic_images.image_service.glance.GlanceImageService.detail`
            takes them (``limit``, ``page_size``, ``marker``,
            ``sort_key``, ``sort_dir``, ``filters``, any Glance filter).
        :returns: a list of image dicts.
        :raises: UnknownImageService when Glance is not enabled;
            ImageNotAuthorized, TemporaryFailure.
        """
        return self._service(context, GLANCE_HREF).detail(context, **kwargs)

    def create(self, context, image_info, data=None):
        """Create a Glance image, and upload its data when given.

        :param context: a request context, or None.
        :param image_info: attributes and an optional ``properties`` dict.
        :param data: None, bytes, a binary file object or an iterator of
            bytes.
        :returns: the new image dict.
        :raises: ImageRefValidationFailed for an invalid request,
            ImageNotAuthorized, TemporaryFailure.
        """
        return self._service(context, GLANCE_HREF).create(
            context, image_info, data=data)

    def update(self, context, id_or_uri, image_info, data=None,
               purge_props=False):
        """Change a Glance image, and upload its data when given.

        :param context: a request context, or None.
        :param id_or_uri: an image UUID or ``glance://`` href.
        :param image_info: the attributes to set; a None value removes a
            user property.
        :param data: image data to upload, or None.
        :param purge_props: remove user properties not in ``image_info``.
        :returns: the image dict.
        :raises: OperationNotSupported for a read-only scheme;
            ImageNotFound, ImageRefValidationFailed, ImageNotAuthorized,
            TemporaryFailure.
        """
        return self._service(context, id_or_uri).update(
            context, id_or_uri, image_info, data=data,
            purge_props=purge_props)

    def delete(self, context, id_or_uri):
        """Delete a Glance image.

        :param context: a request context, or None.
        :param id_or_uri: an image UUID or ``glance://`` href.
        :returns: True.
        :raises: OperationNotSupported for a read-only scheme;
            ImageNotFound, ImageNotAuthorized, TemporaryFailure.
        """
        return self._service(context, id_or_uri).delete(
            context, id_or_uri)

    def download(self, context, id_or_uri, data=None, dest_path=None,
                 checksum=None, checksum_algo=None):
        """Download an image's data, verified.

        :param context: a request context, or None.
        :param id_or_uri: an image UUID or any enabled scheme's href.
        :param data: a binary file object to write to; the call returns
            None once the data is written and verified.
        :param dest_path: a path written atomically (a temp file beside it,
            fsynced and renamed; nothing is left there on failure); a
            block device or a stream there is written in place (see
            :func:`ironic_images.sink.destination.open_destination`); the
            call returns None.
        :param checksum: an extra expected checksum (``algo:hex``, bare
            hex or a checksum file URL), for schemes whose source declares
            none.
        :param checksum_algo: the algorithm of a bare-hex ``checksum``.
        :returns: None with ``data`` or ``dest_path``; otherwise an
            iterator of bytes that raises, after the last chunk, what
            verification raises (see the module's documentation).
        :raises: OperationNotSupported when both ``data`` and
            ``dest_path`` are given; what the driver's ``download`` raises;
            ImageDownloadFailed when ``dest_path`` cannot be written;
            DestinationUndefined when a device or stream was written.
        """
        if data is not None and dest_path is not None:
            raise exception.OperationNotSupported(
                operation='download', image_href=id_or_uri,
                reason=_('give data or dest_path, not both'))
        service = self._service(context, id_or_uri)

        def _download(image_file):
            service.download(id_or_uri, image_file, checksum=checksum,
                             checksum_algo=checksum_algo)

        if data is not None:
            _download(data)
        elif dest_path is not None:
            with destination.open_destination(dest_path,
                                              id_or_uri) as image_file:
                _download(image_file)
        else:
            return _DownloadIterator(_download, id_or_uri)


class _Consumed(Exception):
    """The consumer of an iterator download has stopped reading."""


class _QueueWriter:
    """A file object whose writes go to a bounded queue, as bytes."""

    def __init__(self, chunks, stopped):
        self._chunks = chunks
        self._stopped = stopped

    def write(self, data):
        # The pipeline reuses its buffers: the consumer needs a copy.
        chunk = bytes(data)
        while True:
            if self._stopped.is_set():
                raise _Consumed()
            try:
                self._chunks.put(chunk, timeout=_POLL_SECONDS)
                return len(chunk)
            except queue.Full:
                continue

    def seekable(self):
        # Bytes already yielded cannot be taken back: a transfer that must
        # start again fails instead.
        return False

    def flush(self):
        pass

    def fileno(self):
        # As io.BytesIO does: drivers that copy in the kernel fall back.
        raise io.UnsupportedOperation('an iterator has no file descriptor')


_DONE = object()


class _Producer:
    """The download thread's side of an iterator download.

    Kept apart from :class:`_DownloadIterator` so that the thread holds no
    reference to the iterator: a consumer that drops the iterator gets it
    collected, which stops this producer.
    """

    def __init__(self, download):
        self.chunks = queue.Queue(maxsize=_ITERATOR_DEPTH)
        self.stopped = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(download,),
                                       name='image-download', daemon=True)

    def _run(self, download):
        try:
            download(_QueueWriter(self.chunks, self.stopped))
        except BaseException as error:
            # The pipeline reports a consumer that went (_Consumed) as a
            # failed download: nobody reads that error.
            self.error = error
        while not self.stopped.is_set():
            try:
                self.chunks.put(_DONE, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def stop(self):
        """Make the download fail at its next write; wait for the thread.

        Once this returns, the driver has closed its connection and file.
        """
        self.stopped.set()
        if (self.thread.ident is not None
                and self.thread is not threading.current_thread()):
            self.thread.join()


class _DownloadIterator:
    """Run ``download(file_object)`` in a thread; iterate what it writes.

    The first chunk is awaited before the constructor returns, so an
    error before any data (a missing image, a refused href) is raised by
    :meth:`API.download` itself. The driver verifies when its download
    returns: its error is raised after the last chunk, instead of
    ``StopIteration``. Closing the iterator, or dropping it, stops the
    download and waits for its thread.
    """

    def __init__(self, download, image_href):
        self._href = image_href
        self._producer = _Producer(download)
        self._thread = self._producer.thread
        self._finished = False
        # Runs when the iterator is closed or collected; not at exit,
        # which must not wait for a download (its thread is a daemon).
        self._stop = weakref.finalize(self, self._producer.stop)
        self._stop.atexit = False
        self._thread.start()
        self._first = self._producer.chunks.get()
        if self._first is _DONE:
            self._finish()

    def __iter__(self):
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        chunk, self._first = self._first, None
        if chunk is None:
            chunk = self._producer.chunks.get()
        if chunk is _DONE:
            self._finish()
            raise StopIteration
        return chunk

    def _finish(self):
        self._finished = True
        self._thread.join()
        self._stop()
        error = self._producer.error
        if error is None:
            return
        if isinstance(error, exception.IronicImagesException):
            raise error
        raise exception.ImageDownloadFailed(
            image_href=self._href,
            reason='%s: %s' % (type(error).__name__, error))

    def close(self):
        """Stop the download and wait for it; the iterator then ends."""
        self._finished = True
        self._stop()
