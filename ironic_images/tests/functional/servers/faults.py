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
"""A scriptable HTTP/1.1 server, for the faults nginx cannot make.

Serve resources, from memory or from a file::

    server = self.useFixture(faults.FaultServerFixture())
    url = server.add('/disk.img', body=data)       # or file=PATH

A resource answers GET and HEAD with Content-Length, ETag, Last-Modified
and Accept-Ranges; a single ``Range`` gets 206 with Content-Range (416 when
unsatisfiable; several ranges get the full 200), and an ``If-Range`` that
does not match the current ETag or Last-Modified gets the full 200.
Options of :meth:`FaultServer.add`: ``head_status=405`` (or 501) refuses
HEAD, ``ranges=False`` makes a server that cannot resume.

Script the next requests to a path: the Nth element applies to the Nth
request from now (only requests of ``method`` count, if given); None, or
the end of the list, serves normally::

    server.script('/disk.img', [error(503), cut(1000), None, change(b'v2')])

Faults (:class:`Fault` objects, made by these helpers):

* ``error(status, retry_after=None)``: answer 403, 404, 429, 500, 503...
* ``redirect(location, status=302)``.
* ``cut(after, reset=False)``: send ``after`` body bytes, then close the
  connection (with a FIN, or a RST: then bytes in flight may be lost).
* ``stall(after, seconds=None)``: pause after ``after`` body bytes for
  ``seconds`` (None: until the server stops), then go on.
* ``declare_length(n)``: declare ``Content-Length: n`` but send the real
  body, then close the connection.
* ``no_range()``: answer a Range request with the full 200 body.
* ``change(body=None, file=None, ...)``: replace the resource (new ETag and
  Last-Modified) for this request and the next ones.
* ``flood(total, prefix=b'', status=200)``: answer ``status`` with
  ``prefix`` then filler, ``total`` bytes in all, without Content-Length
  (the body ends when the connection closes): a body that, to a client,
  never ends. The bytes each flood sent are in
  :attr:`FaultServer.flooded`.

Every request is recorded, in order, in :attr:`FaultServer.requests`.

In front of a real server (a rate-limiting proxy), requests to a path
without a resource of its own, and without a fault scripted for them, are
forwarded to it::

    server.forward_to(registry.url)
    server.script('/v2/os/disk/manifests/v1', [error(429, retry_after=1)])
"""

import collections
import dataclasses
import email.utils
import hashlib
import os
import socket
import threading
import time
import urllib.parse

from ironic_images.tests.functional.servers import base
from ironic_images.tests.functional.servers import fault_handler


@dataclasses.dataclass(frozen=True)
class Fault(object):
    """How to answer one request differently.

    Made by the helpers below; fields may be combined.  ``status`` answers
    that status with a short text body; ``headers`` are added to the
    answer; ``update`` holds :meth:`FaultServer.add` arguments.
    """

    status: int | None = None
    headers: dict = dataclasses.field(default_factory=dict)
    cut_after: int | None = None
    reset: bool = False
    stall_after: int | None = None
    stall_seconds: float | None = None
    content_length: int | None = None
    ignore_range: bool = False
    update: dict | None = None
    flood: tuple | None = None


_NO_FAULT = Fault()


def error(status, retry_after=None):
    """Answer ``status``, with a ``Retry-After`` header if given."""
    headers = {} if retry_after is None else {'Retry-After': str(retry_after)}
    return Fault(status=status, headers=headers)


def redirect(location, status=302):
    """Answer ``status`` with a ``Location`` header."""
    return Fault(status=status, headers={'Location': location})


def cut(after, reset=False):
    """Close the connection after ``after`` body bytes."""
    return Fault(cut_after=after, reset=reset)


def stall(after, seconds=None):
    """Pause after ``after`` body bytes (None: until the server stops)."""
    return Fault(stall_after=after, stall_seconds=seconds)


def declare_length(length):
    """Declare ``Content-Length: length``, whatever is sent."""
    return Fault(content_length=length)


def no_range():
    """Ignore ``Range``: answer 200 with the whole body."""
    return Fault(ignore_range=True)


def flood(total, prefix=b'', fill=b' ',
          content_type='application/json', status=200):
    """Answer ``status``: ``prefix``, then ``fill`` up to ``total`` bytes.

    No Content-Length: the body ends only when the connection closes, or
    when ``total`` bytes are sent.
    """
    return Fault(flood=(status, bytes(prefix), bytes(fill), total),
                 headers={'Content-Type': content_type})


def change(body=None, file=None, etag=True, last_modified=True):
    """Replace the resource from this request on (see ``add()``)."""
    return Fault(update=dict(body=body, file=file, etag=etag,
                             last_modified=last_modified))


@dataclasses.dataclass(frozen=True)
class Request(object):
    """A recorded request.

    ``path`` is as sent (with the query string); ``headers`` is a dict with
    lower-case names.
    """

    method: str
    path: str
    headers: dict

    def header(self, name, default=None):
        """Return a header value, whatever the case of ``name``."""
        return self.headers.get(name.lower(), default)


class FaultServer(object):
    """A threaded HTTP/1.1 server on 127.0.0.1; see the module docstring.

    The port is bound by the constructor. Attributes: ``url`` (no trailing
    slash), ``port``, ``requests`` and ``stop_event`` (set by :meth:`stop`).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._resources = {}
        self._scripts = {}
        self._requests = []
        self._flooded = []
        self._thread = None
        self.upstream = None
        self.stop_event = threading.Event()
        self._httpd = fault_handler.HTTPServer(self)
        self.port = self._httpd.server_address[1]
        self.url = 'http://%s:%d' % (base.LOCALHOST, self.port)

    def url_for(self, path):
        """Return the URL of ``path`` (which starts with ``/``)."""
        return self.url + path

    def add(self, path, body=None, file=None, etag=True, last_modified=True,
            content_type='application/octet-stream', head_status=None,
            ranges=True):
        """Serve a resource at ``path`` (replacing any previous one).

        :param path: the URL path, starting with ``/``.
        :param body: the content, as bytes; or
        :param file: the path of a file with the content.
        :param etag: True for a computed ETag, a value (quotes are added if
            missing), or None for no ETag.
        :param last_modified: True for the file's mtime (now for a body), an
            epoch time, an HTTP date string, or None for none.
        :param head_status: if set, the status of every HEAD (405, 501).
        :param ranges: False to ignore Range (a server that cannot resume).
        :returns: the URL of the resource.
        """
        if (body is None) == (file is None):
            raise ValueError('give exactly one of body and file')
        if etag is True and file is not None:
            st = os.stat(file)
            etag = '"%x-%x"' % (int(st.st_mtime), st.st_size)
        elif etag is True:
            etag = '"%s"' % hashlib.sha256(body).hexdigest()[:16]
        elif etag and not etag.startswith(('"', 'W/"')):
            etag = '"%s"' % etag
        if last_modified is True:
            last_modified = os.path.getmtime(file) if file else time.time()
        if isinstance(last_modified, (int, float)):
            last_modified = email.utils.formatdate(last_modified, usegmt=True)
        with self._lock:
            self._resources[path] = fault_handler.Resource(
                body, file, etag or None, last_modified or None,
                content_type, head_status, ranges)
        return self.url_for(path)

    def forward_to(self, url):
        """Forward requests for which no resource is added to ``url``.

        :param url: ``http://HOST:PORT`` of the server behind this one.
        """
        self.upstream = urllib.parse.urlsplit(url)

    def script(self, path, faults, method=None):
        """Apply ``faults[N]`` to the Nth next request to ``path``.

        :param faults: a list of :class:`Fault` or None (serve normally).
        :param method: if set (e.g. ``'GET'``), other methods do not count.
        """
        with self._lock:
            self._scripts[path] = (method, collections.deque(faults))

    @property
    def requests(self):
        """A copy of the list of :class:`Request`, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def flooded(self):
        """The bytes each ``flood`` answer sent, in order."""
        with self._lock:
            return list(self._flooded)

    def record_flood(self, sent):
        """Record what a ``flood`` answer sent (by the handler)."""
        with self._lock:
            self._flooded.append(sent)

    def clear_requests(self):
        """Forget the recorded requests."""
        with self._lock:
            del self._requests[:]

    def requests_for(self, path, method=None):
        """The recorded requests to ``path`` (without the query string)."""
        return [r for r in self.requests
                if urllib.parse.urlsplit(r.path).path == path
                and method in (None, r.method)]

    def on_request(self, handler):
        """Record a request; return its Fault and Resource (or None)."""
        path = urllib.parse.urlsplit(handler.path).path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            self._requests.append(Request(handler.command, handler.path,
                                          headers))
            method, faults = self._scripts.get(path, (None, None))
            fault = None
            if faults and method in (None, handler.command):
                fault = faults.popleft()
            old = self._resources.get(path)
        if fault and fault.update:
            options = dict(fault.update)
            if old:
                options.update(content_type=old.content_type,
                               head_status=old.head_status, ranges=old.ranges)
            if old and old.last_modified and options['last_modified'] is True:
                # A new Last-Modified, even within the same second.
                previous = email.utils.parsedate_to_datetime(old.last_modified)
                options['last_modified'] = max(time.time(),
                                               previous.timestamp() + 1)
            self.add(path, **options)
        with self._lock:
            return fault or _NO_FAULT, self._resources.get(path)

    def start(self):
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={'poll_interval': 0.05},
            name='FaultServer-%d' % self.port, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving, wake stalled handlers, close all connections."""
        self.stop_event.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(10)
            self._thread = None
        with self._httpd.lock:
            connections = list(self._httpd.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


class FaultServerFixture(base.ServerFixture):
    """Run a :class:`FaultServer` during a test.

    Its attributes and methods (``url``, ``add()``, ``script()``,
    ``requests``...) can be used on the fixture directly.
    """

    server_class = FaultServer
