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

"""The ``ironic-images`` command.

Sub-commands are parsed by oslo.config (``SubCommandOpt``), so the usual
``--config-file``, ``--config-dir`` and ``--debug`` options come before
the sub-command::

    ironic-images --config-file my.conf show file:///var/lib/ironic/images/x
    ironic-images download https://example.com/x.qcow2 x.qcow2 \\
        --checksum sha256:...

Exit codes: 0 success, 1 failure, 2 bad input (a malformed href, a bad
checksum, a disabled scheme, a usage error).
"""

import sys

from oslo_config import cfg
from oslo_log import log as logging

from ironic_images.cmd import cache_commands
from ironic_images.cmd import commands
from ironic_images.cmd import image_commands
from ironic_images.common import masking
from ironic_images.conf import CONF
from ironic_images import exception

LOG = logging.getLogger(__name__)

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

BAD_INPUT_ERRORS = (exception.ImageRefValidationFailed,
                    exception.InvalidChecksum,
                    exception.ImageChecksumAlgorithmFailure,
                    exception.ImageChecksumURLNotSupported,
                    exception.OperationNotSupported,
                    commands.UsageError)


# Also ImageRefValidationFailed (so that a host's "except" catches them
# around validate_href), but not a sign of bad input.
NOT_BAD_INPUT_ERRORS = (exception.TemporaryFailure,
                        exception.ImageNotAuthorized)

_EXPECTED_ERRORS = (exception.IronicImagesException, commands.UsageError,
                    cfg.Error)


# Each module adds its sub-commands with add_parsers(subparsers).
COMMAND_MODULES = (commands, image_commands, cache_commands)


def _add_parsers(subparsers):
    for module in COMMAND_MODULES:
        module.add_parsers(subparsers)


def _exit_code(error):
    return (EXIT_BAD_INPUT if isinstance(error, BAD_INPUT_ERRORS)
            and not isinstance(error, NOT_BAD_INPUT_ERRORS)
            else EXIT_FAILURE)


def main(argv=None):
    """Run the command line; return the exit code.

    :param argv: the arguments, default ``sys.argv[1:]``.
    :returns: 0, 1 or 2 (see the module docstring).
    """
    argv = sys.argv[1:] if argv is None else argv
    logging.register_options(CONF)
    # Logs go to stderr: stdout carries the JSON of "show" and "inspect".
    CONF.set_default('use_stderr', True)
    command_opt = cfg.SubCommandOpt(
        'command', title='Commands', dest='command',
        help='Run "ironic-images COMMAND --help" for its arguments.',
        handler=_add_parsers)
    CONF.register_cli_opt(command_opt)
    try:
        return _run(argv)
    except SystemExit as error:
        # argparse exits on a usage error, having printed why.
        return error.code if isinstance(error.code, int) else EXIT_BAD_INPUT
    finally:
        # Forget the parsed command line (not defaults or overrides), so
        # main() can run again in one process (tests, embedding).
        CONF.clear()
        CONF.unregister_opt(command_opt)
        CONF.clear_default('use_stderr')


def _run(argv):
    try:
        CONF(argv, project='ironic-images', prog='ironic-images')
    except cfg.Error as error:
        sys.stderr.write('ironic-images: %s\n' % _one_line(error))
        return EXIT_BAD_INPUT
    logging.setup(CONF, 'ironic-images')
    try:
        CONF.command.func()
    except KeyboardInterrupt:
        sys.stderr.write('ironic-images: interrupted\n')
        return EXIT_FAILURE
    except Exception as error:
        if CONF.debug:
            LOG.exception('%s failed', CONF.command.name)
        sys.stderr.write('ironic-images: %s\n' % _one_line(error))
        return _exit_code(error)
    return 0


def _one_line(error):
    if not isinstance(error, _EXPECTED_ERRORS):
        error = '%s: %s' % (type(error).__name__, error)
    # Ours mask the hrefs they name; a URL in a reason may remain.
    return ' '.join(masking.mask_text(error).split())


if __name__ == '__main__':
    sys.exit(main())
