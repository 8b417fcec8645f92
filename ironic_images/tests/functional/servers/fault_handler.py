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
"""The HTTP side of :class:`~.faults.FaultServer`: handler and server."""

import dataclasses
import http.client
import http.server
import logging
import os
import socket
import struct
import threading

from ironic_images.tests.functional.servers import base

LOG = logging.getLogger(__name__)
_CHUNK = 64 * 1024
_MAX_STALL = 300
_HOP_BY_HOP = ('connection', 'keep-alive', 'transfer-encoding', 'te',
               'upgrade', 'proxy-authorization', 'proxy-authenticate')


@dataclasses.dataclass(frozen=True)
class Resource(object):
    """A resource served by a FaultServer."""

    body: bytes
    file: str
    etag: str
    last_modified: str
    content_type: str
    head_status: int
    ranges: bool

    def size(self):
        return len(self.body) if self.file is None else os.path.getsize(
            self.file)


def _parse_range(value, size):
    """Return (start, end), None to ignore the header, or () for 416."""
    unit, _, spec = value.strip().partition('=')
    first, dash, last = spec.strip().partition('-')
    if unit.strip().lower() != 'bytes' or ',' in spec or not dash:
        return None
    try:
        if not first:
            length = int(last)
            if not (length and size):
                return ()
            return max(0, size - length), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return ()
    return (start, min(end, size - 1)) if end >= start else None


class Handler(http.server.BaseHTTPRequestHandler):
    """Serve the resources of ``self.server.owner``, a FaultServer."""

    protocol_version = 'HTTP/1.1'
    server_version = 'FaultServer'
    # Headers and body go out in separate writes: without TCP_NODELAY
    # each small answer waits for the client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    timeout = 30  # seconds an idle keep-alive connection stays open

    def log_message(self, fmt, *args):
        LOG.debug('%s: ' + fmt, self.address_string(), *args)

    def do_GET(self):
        try:
            self._serve()
        except (ConnectionError, socket.timeout):
            self.close_connection = True

    do_HEAD = do_GET

    def _serve(self):
        fault, res = self.server.owner.on_request(self)
        if fault.flood is not None:
            return self._flood(fault)
        if fault.status:
            return self._simple(fault.status, fault.headers)
        if res is None and self.server.owner.upstream is not None:
            return self._forward(self.server.owner.upstream)
        if res is None:
            return self._simple(404)
        if self.command == 'HEAD' and res.head_status:
            return self._simple(res.head_status)
        size = res.size()
        start, length, status, headers = 0, size, 200, dict(fault.headers)
        ranges = res.ranges and not fault.ignore_range
        if ranges:
            headers['Accept-Ranges'] = 'bytes'
        if (ranges and self.headers.get('Range')
                and self._if_range_matches(res)):
            parsed = _parse_range(self.headers['Range'], size)
            if parsed == ():
                return self._simple(416,
                                    {'Content-Range': 'bytes */%d' % size})
            if parsed:
                start, end = parsed
                length, status = end - start + 1, 206
                headers['Content-Range'] = 'bytes %d-%d/%d' % (
                    start, end, size)
        if res.etag:
            headers['ETag'] = res.etag
        if res.last_modified:
            headers['Last-Modified'] = res.last_modified
        headers['Content-Type'] = res.content_type
        declared = length
        if fault.content_length is not None:
            declared = fault.content_length
            self.close_connection = True
        self._head(status, declared, headers)
        if self.command != 'HEAD':
            self._body(res, start, length, fault)

    def _flood(self, fault):
        """Send a body without a length until ``total`` bytes or a close."""
        status, prefix, fill, total = fault.flood
        self.close_connection = True
        self.send_response(status)
        for name, value in fault.headers.items():
            self.send_header(name, value)
        self.send_header('Connection', 'close')
        self.end_headers()
        block = memoryview(fill * max(1, _CHUNK // len(fill)))
        stop = self.server.owner.stop_event
        sent = 0
        try:
            self.wfile.write(prefix)
            sent = len(prefix)
            while sent < total and not stop.is_set():
                sent += self.wfile.write(block[:total - sent])
        finally:
            self.server.owner.record_flood(sent)

    def _forward(self, upstream):
        """Answer with what the server behind this one answers."""
        headers = {name: value for name, value in self.headers.items()
                   if name.lower() not in _HOP_BY_HOP + ('host',)}
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port,
                                          timeout=30)
        try:
            conn.request(self.command, self.path, headers=headers)
            response = conn.getresponse()
            # Test bodies are small: whole, then sent with their length.
            body = response.read()
        finally:
            conn.close()
        self._head(response.status, len(body), {
            name: value for name, value in response.getheaders()
            if name.lower() not in _HOP_BY_HOP + ('content-length',)})
        if self.command != 'HEAD':
            self.wfile.write(body)

    def _if_range_matches(self, res):
        value = self.headers.get('If-Range')
        if value is None:
            return True
        if value.startswith(('"', 'W/')):
            return bool(res.etag) and res.etag[0] == '"' and value == res.etag
        return value == res.last_modified

    def _head(self, status, length, headers):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header('Content-Length', str(length))
        self.end_headers()

    def _simple(self, status, headers=None):
        phrase = self.responses.get(status, ('',))[0]
        body = ('%d %s\n' % (status, phrase)).encode()
        headers = dict(headers or {}, **{'Content-Type': 'text/plain'})
        self._head(status, len(body), headers)
        if self.command != 'HEAD':
            self.wfile.write(body)

    def _body(self, res, start, length, fault):
        sent, stalled = 0, False
        stop = self.server.owner.stop_event
        with open(res.file, 'rb') if res.file else _Bytes(res.body) as f:
            f.seek(start)
            while True:
                if sent == fault.stall_after and not stalled:
                    stalled = True
                    seconds = fault.stall_seconds
                    if stop.wait(_MAX_STALL if seconds is None else seconds):
                        self.close_connection = True
                        return
                if fault.cut_after is not None and sent >= fault.cut_after:
                    return self._cut(fault.reset)
                if sent >= length:
                    return
                limit = min(length - sent, _CHUNK)
                for mark in (fault.cut_after, fault.stall_after):
                    if mark is not None and mark > sent:
                        limit = min(limit, mark - sent)
                chunk = f.read(limit)
                if not chunk:
                    return self._cut(False)  # the file shrank
                self.wfile.write(chunk)
                sent += len(chunk)

    def _cut(self, reset):
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack('ii', 1, 0))
            self.server.no_shutdown.add(self.connection)


class _Bytes(object):
    """A minimal file over a bytes object, without copying it."""

    def __init__(self, data):
        self._view, self._pos = memoryview(data), 0

    def seek(self, pos):
        self._pos = pos

    def read(self, size):
        chunk = self._view[self._pos:self._pos + size]
        self._pos += len(chunk)
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._view.release()


class HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner):
        self.owner = owner
        self.connections = set()
        self.no_shutdown = set()  # sockets to close with a RST
        self.lock = threading.Lock()
        super(HTTPServer, self).__init__((base.LOCALHOST, 0), Handler)

    def process_request(self, request, client_address):
        with self.lock:
            self.connections.add(request)
        super(HTTPServer, self).process_request(request, client_address)

    def shutdown_request(self, request):
        with self.lock:
            self.connections.discard(request)
            reset = request in self.no_shutdown
            self.no_shutdown.discard(request)
        if reset:
            self.close_request(request)
        else:
            super(HTTPServer, self).shutdown_request(request)

    def handle_error(self, request, client_address):
        LOG.debug('error handling %s', client_address, exc_info=True)
