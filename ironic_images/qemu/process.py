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

"""Running qemu-img: under limits, in the C locale, dying with its parent.

Every qemu-img process runs through
:func:`oslo_concurrency.processutils.execute` with an address-space cap
(``[image_convert]memory_limit_mb``) and, unless told otherwise, a
CPU-time cap (``[image_convert]cpu_time_limit_s``).
"""

import ctypes
import os
import re
import signal

from oslo_concurrency import processutils
from oslo_log import log as logging
from oslo_utils import units

from ironic_images._i18n import _
from ironic_images.conf import CONF
from ironic_images import exception

LOG = logging.getLogger(__name__)

# Longest part of qemu-img's stderr kept in an exception message.
_MAX_REASON = 1000

_VERSION_RE = re.compile(r'qemu-img version (\d+(?:\.\d+)*)')
_qemu_img_version = None


def _limits(cpu_time=True):
    """The resource caps of a qemu-img process, from ``[image_convert]``."""
    return processutils.ProcessLimits(
        address_space=CONF.image_convert.memory_limit_mb * units.Mi,
        cpu_time=CONF.image_convert.cpu_time_limit_s if cpu_time else None)


def failure_reason(error):
    """A short reason for a failed qemu-img run, from its stderr.

    :param error: what :func:`execute` raised.
    :returns: one line, at most about 1000 characters.
    """
    if isinstance(error, processutils.ProcessExecutionError):
        text = (error.stderr or error.stdout or '').strip()
        code = error.exit_code
        if isinstance(code, int) and code < 0:
            # Killed by a signal: SIGXCPU when the CPU-time cap is hit,
            # SIGABRT when an allocation fails under the memory cap.
            text = _('qemu-img was killed by signal %(sig)d (resource '
                     'limit reached?) %(err)s') % {'sig': -code, 'err': text}
        elif not text:
            text = _('qemu-img exited with code %s') % code
    else:
        text = str(error)
    text = ' '.join(text.split())
    if len(text) > _MAX_REASON:
        text = '...' + text[-_MAX_REASON:]
    return text


def local_path(path):
    """An absolute path, which qemu-img cannot take for anything else.

    qemu-img reads ``json:{...}`` and ``PROTOCOL:...`` (nbd, http, ...)
    file names as instructions to open something else; a path that starts
    with ``/`` is always a plain local file.

    :param path: a file name.
    :returns: it, absolute.
    """
    return os.path.abspath(path)


def execute(*args, cpu_time=True, watcher=None):
    """Run qemu-img with the caps, in the C locale so errors are stable.

    :param args: qemu-img's arguments; paths made absolute
        (:func:`local_path`).
    :param cpu_time: apply ``[image_convert]cpu_time_limit_s`` too.
    :param watcher: None, or an object whose ``on_execute(process)`` and
        ``on_completion(process)`` are called when qemu-img starts and
        ends (a :class:`ironic_images.qemu.progress.ReadProgress`).
    :returns: ``(stdout, stderr)``.
    :raises: ProcessExecutionError, OSError: callers map them to one of
        our exceptions, with :func:`failure_reason`.
    """
    # glibc gives threads their own malloc arenas, each reserving 64 MiB of
    # address space, up to 8 per CPU: on a large host qemu-img's I/O
    # threads would hit the address-space cap without using the memory.
    # Three arenas is what Ironic settled on for the same reason.
    env = dict(os.environ, LC_ALL='C', LANG='C', MALLOC_ARENA_MAX='3')
    hooks = {}
    if watcher is not None:
        hooks = {'on_execute': watcher.on_execute,
                 'on_completion': watcher.on_completion}
    return processutils.execute('qemu-img', *args, prlimit=_limits(cpu_time),
                                env_variables=env,
                                preexec_fn=_die_with_parent, **hooks)


_PR_SET_PDEATHSIG = 1


def _load_prctl():
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None  # not Linux: a conversion just runs to its end


# Looked up once, here: the child must not dlopen() between fork and exec,
# where a loader lock held by another thread of the parent never unlocks.
_prctl = _load_prctl()


def _die_with_parent():
    """In the child: be killed when the process that started it dies.

    A conversion whose caller was killed would otherwise run on, writing a
    temp file nobody will rename (the next fetch removes it).
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def get_qemu_img_version():
    """Return the version of qemu-img, e.g. ``[7, 2, 22]``.

    Cached until the process restarts once found.

    :returns: the version as a list of ints, or None when qemu-img is
        missing or does not say its version.
    """
    global _qemu_img_version
    if _qemu_img_version is not None:
        return _qemu_img_version
    try:
        out, _err = processutils.execute('qemu-img', '--version',
                                         check_exit_code=False)
    except OSError as e:
        LOG.warning('qemu-img is not available: %s', e)
        return None
    match = _VERSION_RE.search(out)
    if not match:
        LOG.warning('Cannot tell the version of qemu-img from %r', out[:200])
        return None
    _qemu_img_version = [int(part) for part in match.group(1).split('.')]
    return _qemu_img_version


def check_qemu_img_version(minimum_version):
    """Require qemu-img of at least a version.

    :param minimum_version: e.g. ``'2.10'``.
    :raises: OperationNotSupported when qemu-img is missing or older.
    """
    found = get_qemu_img_version()
    required = [int(part) for part in str(minimum_version).split('.')]
    if found is None or found < required:
        raise exception.OperationNotSupported(
            _('qemu-img %(required)s or later is required; found '
              '%(found)s') % {
                'required': minimum_version,
                'found': '.'.join(map(str, found)) if found else _('none')})
