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

"""Temp files and directories in ``[DEFAULT]tempdir``."""

import contextlib
import os
import tempfile

from ironic_images.common import fileutils
from ironic_images.conf import CONF


@contextlib.contextmanager
def temporary_file(suffix='', prefix='tmp', **kwargs):
    """A temp file in ``[DEFAULT]tempdir``, removed at the end.

    :param suffix: the end of its name.
    :param prefix: the start of its name.
    :param kwargs: ignored (for Cinder compatibility).
    :returns: a context manager yielding the path.
    """
    fd, path = tempfile.mkstemp(suffix=suffix, prefix=prefix,
                                dir=CONF.tempdir)
    os.close(fd)
    try:
        yield path
    finally:
        fileutils.remove_quietly(path)


@contextlib.contextmanager
def temporary_dir():
    """A temp directory in ``[DEFAULT]tempdir``, removed with its files.

    :returns: a context manager yielding the path.
    """
    with tempfile.TemporaryDirectory(dir=CONF.tempdir) as path:
        yield path
