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

"""A one-line progress display, with its rate and ETA, at a terminal.

A :class:`Progress` is the ``progress(done, total)`` callback the library
takes. It draws on standard error, only when that is a terminal. A job
of several steps (a download, then a conversion) reports each from zero:
a count that starts again after reaching its total begins the next step,
drawn on a line of its own under the next label.
"""

import sys
import threading
import time

from ironic_images.cmd import output

_INTERVAL = 0.2
# The rate of the last seconds, not of the whole step: an ETA follows a
# change of speed within this many seconds.
_WINDOW = 5.0


def _duration(seconds):
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    if hours:
        return '%d:%02d:%02d' % (hours, rest // 60, rest % 60)
    return '%d:%02d' % divmod(rest, 60)


class Progress:
    """Draw progress on a stream, only when it is a terminal.

    :param stream: where to draw; default standard error.
    :param enabled: force drawing on or off; default: when ``stream`` is
        a terminal.
    :param labels: the label of each step, in order (the last one serves
        any further step); None for a step without one.
    """

    def __init__(self, stream=None, enabled=None, labels=(None,)):
        self._stream = stream or sys.stderr
        self.enabled = (self._stream.isatty() if enabled is None
                        else enabled)
        self._labels = labels
        self._step = 0
        self._lock = threading.Lock()
        self._drawn = False
        self._state = None
        self._start_step()

    def _start_step(self):
        now = time.monotonic()
        self._start = now
        self._last = 0.0
        self._samples = [(now, 0)]
        self._complete = False
        self._done_at = None

    @property
    def label(self):
        """The label of the current step, or None."""
        return self._labels[min(self._step, len(self._labels) - 1)]

    def __call__(self, done, total):
        with self._lock:
            if self._state is not None and done < self._state[0] and (
                    self._complete):
                self._next_step()
            self._state = (done, total)
            now = time.monotonic()
            self._complete = bool(total) and done >= total
            if self._complete and self._done_at is None:
                self._done_at = now
            self._samples.append((now, done))
            while len(self._samples) > 2 and (
                    now - self._samples[1][0] > _WINDOW):
                self._samples.pop(0)
            if not self.enabled or now - self._last < _INTERVAL:
                return
            self._last = now
            self._draw(done, total, now)

    def _next_step(self):
        if self.enabled:
            self._draw(*self._state, time.monotonic())
        self._end_line()
        self._step += 1
        self._start_step()

    def _rate(self, done, now):
        first_time, first_done = self._samples[0]
        if now - first_time < 1e-3:
            first_time, first_done = self._start, 0
        return max(done - first_done, 0) / max(now - first_time, 1e-3)

    def _draw(self, done, total, now):
        if self._complete:
            # A finished step keeps its figures, however long it is shown.
            now = self._done_at
            rate = done / max(now - self._start, 1e-3)
        else:
            rate = self._rate(done, now)
        text = output.human_size(done)
        if total:
            text = '%s / %s  %3d%%' % (text, output.human_size(total),
                                       min(done * 100 // total, 100))
        text += '  %s/s' % output.human_size(rate)
        if total and done < total and rate > 0:
            text += '  ETA %s' % _duration((total - done) / rate)
        elif self._complete:
            text += '  in %s' % _duration(now - self._start)
        if self.label:
            text = '%s  %s' % (self.label, text)
        self._stream.write('\r%s\033[K' % text)
        self._stream.flush()
        self._drawn = True

    def _end_line(self):
        if self._drawn:
            self._stream.write('\n')
            self._stream.flush()
            self._drawn = False

    def close(self):
        """Draw the final state and end the progress line."""
        with self._lock:
            if self.enabled and self._state is not None:
                self._draw(*self._state, time.monotonic())
            self._end_line()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def callback(self):
        """This when it draws, else None: the library then counts nothing.

        :returns: the ``progress`` argument to give the library.
        """
        return self if self.enabled else None
