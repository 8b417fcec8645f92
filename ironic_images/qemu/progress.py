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

"""How far a running qemu-img is, told by the bytes it has read.

``qemu-img convert`` reads its source once, front to back: the bytes it
has read so far (``rchar`` of ``/proc/PID/io``, all its threads counted)
against the data the source holds say how far it is. qemu-img's own
``-p`` draws on its standard output, which oslo.concurrency hands back
only when the process has ended.
"""

import os
import threading

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

_INTERVAL = 0.2


def data_size(path):
    """The bytes of data a file holds: its size, less its holes.

    :param path: the file.
    :returns: the bytes qemu-img will read of it, at most.
    :raises: OSError.
    """
    stat = os.stat(path)
    return min(stat.st_size, stat.st_blocks * 512)


def bytes_read(pid):
    """The bytes a process has read so far, or None once it is gone.

    :param pid: the process.
    """
    try:
        with open('/proc/%d/io' % pid) as io_file:
            for line in io_file:
                if line.startswith('rchar:'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class ReadProgress:
    """Report what a process reads, from a thread, while it runs.

    Give :meth:`on_execute` and :meth:`on_completion` to
    :func:`oslo_concurrency.processutils.execute`; a process run again
    (a retry) is watched again.

    :param progress: ``progress(done, total)``, called from the thread.
    :param total: the bytes the process is expected to read.
    :param interval: seconds between two reports.
    """

    def __init__(self, progress, total, interval=_INTERVAL):
        self._progress = progress
        self._total = total
        self._interval = interval
        self._stop = threading.Event()
        self._thread = None

    def on_execute(self, process):
        """Start watching a process that has just started.

        Reports ``(0, total)`` first: a display then knows a new step has
        begun, however quickly it ends.
        """
        self._report(0)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, args=(process.pid,), daemon=True,
            name='qemu-img-progress')
        self._thread.start()

    def on_completion(self, process):
        """Stop watching, once the process has ended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def done(self):
        """Report the end: every byte read."""
        self._report(self._total)

    def _watch(self, pid):
        while not self._stop.wait(self._interval):
            done = bytes_read(pid)
            if done is None or not self._report(done):
                return

    def _report(self, done):
        try:
            self._progress(min(done, self._total), self._total)
        except Exception:
            # A display that fails must not fail the conversion.
            LOG.debug('Progress callback failed', exc_info=True)
            return False
        return True
