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

"""A one-line progress display for long transfers at a terminal."""

import sys
import time

from oslo_utils import units

_INTERVAL = 0.2


def _human(size):
    for unit, factor in (('GiB', units.Gi), ('MiB', units.Mi),
                         ('KiB', units.Ki)):
        if size >= factor:
            return '%.1f %s' % (size / factor, unit)
    return '%d B' % size


class Progress:
    """Draw transfer progress on a stream, only when it is a terminal.

    Use an instance as the ``progress`` callback of a transfer, then call
    :meth:`close`.

    :param stream: where to draw; default stderr.
    :param enabled: force drawing on or off; default: when ``stream`` is a
        terminal.
    """

    def __init__(self, stream=None, enabled=None):
        self._stream = stream or sys.stderr
        self.enabled = (self._stream.isatty() if enabled is None
                        else enabled)
        self._start = time.monotonic()
        self._last = 0.0
        self._drawn = False
        self._state = None

    def __call__(self, done, total):
        self._state = (done, total)
        now = time.monotonic()
        if not self.enabled or now - self._last < _INTERVAL:
            return
        self._last = now
        self._draw(done, total, now)

    def _draw(self, done, total, now):
        rate = done / max(now - self._start, 1e-6)
        if total:
            text = '%s / %s  %3d%%' % (_human(done), _human(total),
                                       done * 100 // total)
        else:
            text = _human(done)
        self._stream.write('\r%s  %s/s\033[K' % (text, _human(rate)))
        self._stream.flush()
        self._drawn = True

    def close(self):
        """Draw the final state and end the progress line."""
        if self.enabled and self._state is not None:
            self._draw(*self._state, time.monotonic())
        if self._drawn:
            self._stream.write('\n')
            self._stream.flush()
            self._drawn = False
