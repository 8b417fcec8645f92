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

argparse owns the command line (:mod:`ironic_images.cmd.parser`); global
options go anywhere::

    ironic-images show disk.qcow2
    ironic-images fetch --raw https://example.com/x.qcow2.zst x.raw \\
        --checksum sha256:... --config-file my.conf
    ironic-images show oci://quay.io/org/disk:latest -f json

``--config-file`` and ``--config-dir`` are handed to oslo.config. Nothing
of the library is imported until a command runs, so ``--help`` is quick.

Results go to standard output; progress (at a terminal) and errors to
standard error. An error is one line, ``ironic-images: ...``; logs are
shown only with ``--verbose`` or ``--debug`` (with tracebacks).

Exit codes: 0 success, 1 failure (or an image refused), 2 bad input (a
malformed href, a bad checksum, a disabled scheme, a usage error).
"""

import importlib
import logging
import sys
import warnings

from ironic_images.cmd import parser as cli_parser

PROG = 'ironic-images'
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


def _exit_code(error):
    """The exit code of an error a command raised."""
    from oslo_config import cfg

    from ironic_images import exception

    bad_input = (cfg.Error,
                 exception.ImageRefValidationFailed,
                 exception.InvalidChecksum,
                 exception.ImageChecksumAlgorithmFailure,
                 exception.ImageChecksumURLNotSupported,
                 exception.OperationNotSupported,
                 cli_parser.UsageError)
    # Also ImageRefValidationFailed (so that a host's "except" catches
    # them around validate_href), but not a sign of bad input.
    not_bad_input = (exception.TemporaryFailure,
                     exception.ImageNotAuthorized)
    return (EXIT_BAD_INPUT if isinstance(error, bad_input)
            and not isinstance(error, not_bad_input) else EXIT_FAILURE)


def _version():
    # Not imported at the top: it costs more than the rest of --help.
    import importlib.metadata

    try:
        return importlib.metadata.version(PROG)
    except importlib.metadata.PackageNotFoundError:
        return 'unknown'


def main(argv=None):
    """Run the command line; return the exit code.

    :param argv: the arguments, default ``sys.argv[1:]``.
    :returns: 0, 1 or 2 (see the module docstring).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = cli_parser.parse(argv)
    except cli_parser.UsageError as error:
        _print_error(error)
        return EXIT_BAD_INPUT
    except SystemExit as error:
        # --help printed what was asked.
        return error.code if isinstance(error.code, int) else 0
    if args.version:
        sys.stdout.write('%s %s\n' % (PROG, _version()))
        return 0
    with _Logging(args), warnings.catch_warnings():
        return _run(args)


class _Logging:
    """Logs to standard error at the level the command line asks.

    Nothing below CRITICAL by default: the command's result, or its one
    error line, says what a person needs. ``--verbose`` shows warnings
    and what is done, in one short line each; ``--debug`` everything,
    with times and tracebacks. Python warnings (urllib3's about an
    unverified HTTPS request...) are logged with them.
    """

    def __init__(self, args):
        self.args = args

    def __enter__(self):
        root = logging.getLogger()
        self._level = root.level
        if self.args.debug:
            level, fmt = logging.DEBUG, ('%(asctime)s %(levelname)s '
                                         '%(name)s: %(message)s')
        elif self.args.verbose:
            level, fmt = logging.INFO, PROG + ': %(levelname)s: %(message)s'
        else:
            level, fmt = logging.CRITICAL, PROG + ': %(message)s'
        self._handler = logging.StreamHandler(sys.stderr)
        self._handler.setFormatter(logging.Formatter(fmt))
        root.addHandler(self._handler)
        root.setLevel(level)
        logging.captureWarnings(True)
        return self

    def __exit__(self, *exc_info):
        root = logging.getLogger()
        root.removeHandler(self._handler)
        root.setLevel(self._level)
        logging.captureWarnings(False)


def _run(args):
    from ironic_images.cmd import sources
    from ironic_images import conf
    from ironic_images.conf import CONF

    overrides = sources.Overrides(CONF)
    try:
        _load_config(args, conf, CONF)
        sources.configure_tls(args, overrides)
        if args.insecure:
            import urllib3

            # Asked for: not worth a warning per request.
            warnings.simplefilter('ignore',
                                  urllib3.exceptions.InsecureRequestWarning)
        args.overrides = overrides
        module_name, _sep, function = args.target.partition(':')
        module = importlib.import_module('ironic_images.cmd.' + module_name)
        result = getattr(module, function)(args)
        from ironic_images.cmd import output

        output.write(result, args, output.stream_for(args))
        return result.exit_code
    except KeyboardInterrupt:
        sys.stderr.write('%s: interrupted\n' % PROG)
        return EXIT_FAILURE
    except Exception as error:
        if args.debug:
            logging.getLogger(__name__).exception(
                '%s failed', args.command)
        _print_error(error)
        return _exit_code(error)
    finally:
        overrides.clear()
        # Forget the files read (not defaults or overrides set by others),
        # so main() can run again in one process (tests, embedding).
        CONF.clear()
        overrides.unregister()


def _load_config(args, conf, config):
    """Register the library's options and read the configuration files.

    :param args: the parsed command line.
    :param conf: the :mod:`ironic_images.conf` package.
    :param config: the ``ConfigOpts`` to load.
    :raises: oslo_config.cfg.Error for a missing or broken file.
    """
    conf.register_opts(config)
    files = []
    for path in args.config_file or ():
        files += ['--config-file', path]
    for path in args.config_dir or ():
        files += ['--config-dir', path]
    config(files, project=PROG, prog=PROG)


def _print_error(error):
    sys.stderr.write('%s: %s\n' % (PROG, _one_line(error)))
    sys.stderr.flush()


def _one_line(error):
    if isinstance(error, cli_parser.UsageError):
        text = str(error)
    else:
        from oslo_config import cfg

        from ironic_images.common import masking
        from ironic_images import exception

        text = str(error)
        if not isinstance(error, (exception.IronicImagesException,
                                  cfg.Error)):
            text = '%s: %s' % (type(error).__name__, text)
        # Ours mask the hrefs they name; a URL in a reason may remain.
        text = masking.mask_text(text)
    return ' '.join(text.split())


if __name__ == '__main__':
    sys.exit(main())
