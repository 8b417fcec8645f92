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

"""The command line of ``ironic-images``: every option and sub-command.

argparse owns the command line. The global options are accepted before
and after the sub-command (``ironic-images show --debug --config-file F
HREF`` works): each sub-command's parser has a copy of them under other
names, merged into the top-level ones by :func:`parse`. A sub-command
names the function that runs it (``module:function`` under
:mod:`ironic_images.cmd`), imported only once it is chosen, so that
``--help`` imports nothing of the library.
"""

import argparse
import os

OUTPUT_FORMATS = ('text', 'json', 'value')

# dest -> how the two copies of a global option merge.
_APPEND, _FLAG, _VALUE, _COUNT = 'append', 'flag', 'value', 'count'
_SUB = '_sub_'


class UsageError(Exception):
    """The command line is wrong; the message says how (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, raised not printed."""

    def error(self, message):
        raise UsageError('%s (see "%s --help")' % (message, self.prog))


def _output_format(value):
    if value in OUTPUT_FORMATS:
        return value
    # Before the output formats, "--format" of fetch and inspect was the
    # declared disk format.
    raise argparse.ArgumentTypeError(
        '%r is not an output format (%s); the declared disk format is '
        'given with --disk-format' % (value, ', '.join(OUTPUT_FORMATS)))


def _global(group, sub, *names, merge, **kwargs):
    """Add one global option, to the top-level parser or to a command's."""
    dest = kwargs.pop('dest', None) or names[-1].lstrip('-').replace('-', '_')
    if sub:
        # Unset stays unset: the top-level value is not overwritten.
        kwargs['default'] = argparse.SUPPRESS
        dest = _SUB + merge + '_' + dest
    group.add_argument(*names, dest=dest, **kwargs)


def _add_global_options(parser, sub=False):
    group = parser.add_argument_group('global options')
    _global(group, sub, '--config-file', merge=_APPEND, action='append',
            metavar='PATH',
            help='A configuration file (repeatable; later ones win). '
            'Default: ironic-images.conf in ~/.ironic-images, ~, '
            '/etc/ironic-images or /etc.')
    _global(group, sub, '--config-dir', merge=_APPEND, action='append',
            metavar='DIR',
            help='A directory of *.conf files, read after --config-file.')
    _global(group, sub, '-d', '--debug', merge=_FLAG, action='store_true',
            help='Log everything, with tracebacks, to standard error.')
    _global(group, sub, '-v', '--verbose', merge=_COUNT, action='count',
            help='Log warnings and what is done to standard error.')
    _global(group, sub, '-f', '--format', merge=_VALUE, dest='output',
            type=_output_format, metavar='{%s}' % ','.join(OUTPUT_FORMATS),
            help='Output format: text for people (the default), json, or '
            'value (values only, one per line).')
    _global(group, sub, '-c', '--column', merge=_APPEND, action='append',
            dest='columns', metavar='FIELD',
            help='Print only this field (repeatable).')
    _global(group, sub, '--json', merge=_FLAG, action='store_true',
            help=argparse.SUPPRESS)
    group = parser.add_argument_group('credentials and TLS')
    _global(group, sub, '--creds', merge=_VALUE, metavar='USER:PASSWORD',
            help='Credentials for an oci:// registry or an http(s):// '
            'server (Basic). Visible to other users of this host in the '
            'process list: prefer --authfile.')
    _global(group, sub, '--authfile', merge=_VALUE, metavar='PATH',
            help='Registry credentials in docker\'s config.json form. '
            'Default: [oci]authentication_config, else the first of '
            '$REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, '
            '~/.config/containers/auth.json and '
            '${DOCKER_CONFIG:-~/.docker}/config.json with credentials for '
            'the registry.')
    _global(group, sub, '--ca-file', merge=_VALUE, metavar='PATH',
            help='CA bundle to verify the TLS certificates of web servers, '
            'registries and Glance with.')
    _global(group, sub, '--insecure', merge=_FLAG, action='store_true',
            help='Do not verify TLS certificates, and let a registry be '
            'reached over plain HTTP. Only for test servers.')
    _global(group, sub, '--os-cloud', merge=_VALUE, metavar='NAME',
            help='The cloud of clouds.yaml whose Glance to use. Default: '
            '$OS_CLOUD.')


def _add_arch(parser):
    parser.add_argument(
        '--arch', metavar='ARCH',
        help='For an oci:// index: the architecture whose artifact to use '
        '(amd64, arm64, x86_64, aarch64...). Default: the first the '
        'index lists.')


def _add_checksum(parser):
    parser.add_argument('--checksum', metavar='VALUE',
                        help='Expected checksum of the bytes served: '
                        'ALGO:HEX, bare hex, or the URL of a checksum file '
                        'such as SHA256SUMS.')
    parser.add_argument('--checksum-algo', metavar='ALGO',
                        help='Algorithm of a bare-hex --checksum.')


IMAGE_HELP = ('The image: a local file, an http(s)://, oci:// or file:// '
              'URL, or a Glance image ID.')
DEST_HELP = ('Where to write: a file (replaced atomically), a block device '
             '(written in place), a FIFO or a character device, or - for '
             'standard output.')


def _command(subparsers, name, target, help, parents):
    parser = subparsers.add_parser(name, help=help, description=help,
                                   parents=parents)
    parser.set_defaults(target=target)
    return parser


def build():
    """The parser of the whole command line.

    :returns: an argparse parser.
    """
    parser = _Parser(
        prog='ironic-images',
        description='Get disk images from files, web servers, OCI '
        'registries and Glance: verified, inspected, converted, cached.',
        epilog='Run "ironic-images COMMAND --help" for a command\'s '
        'arguments. Exit codes: 0 success, 1 failure or refusal, 2 bad '
        'input.')
    parser.add_argument('--version', action='store_true',
                        help='Print the version and exit.')
    _add_global_options(parser)
    common = _Parser(add_help=False)
    _add_global_options(common, sub=True)
    commands = parser.add_subparsers(title='commands', dest='command',
                                     metavar='COMMAND', parser_class=_Parser)
    parents = [common]

    show = _command(commands, 'show', 'commands:show',
                    'Print the properties of an image (a tag resolved).',
                    parents)
    show.add_argument('image', help=IMAGE_HELP)
    _add_arch(show)

    download = _command(commands, 'download', 'commands:download',
                        'Download an image as it is served, verifying its '
                        'checksum, to a file, a device or a stream.',
                        parents)
    download.add_argument('image', help=IMAGE_HELP)
    download.add_argument('dest', help=DEST_HELP)
    _add_checksum(download)
    _add_arch(download)

    fetch = _command(commands, 'fetch', 'image_commands:fetch',
                     'Fetch an image to a file, a device or a stream: '
                     'verified, decompressed (zstd, gzip, xz), taken out of '
                     'a tar layer, inspected, optionally converted to raw.',
                     parents)
    fetch.add_argument('image', help=IMAGE_HELP)
    fetch.add_argument('dest', help=DEST_HELP)
    _add_fetch_options(fetch)

    inspect = _command(commands, 'inspect', 'image_commands:inspect',
                       'Print the format, virtual size and the verdict of '
                       'each safety check of an image; exit 1 when it '
                       'would be refused.', parents)
    inspect.add_argument('image', help=IMAGE_HELP + ' A URL is downloaded '
                         'to a temp dir, inspected and removed.')
    inspect.add_argument('--disk-format', metavar='FORMAT',
                         help='The declared disk format; the image must '
                         'match it.')
    _add_checksum(inspect)
    _add_arch(inspect)

    convert = _command(commands, 'convert', 'image_commands:convert',
                       'Convert a local image with qemu-img, after the '
                       'safety checks.', parents)
    convert.add_argument('source', help='The image file (it may be '
                         'compressed).')
    convert.add_argument('dest', help=DEST_HELP)
    convert.add_argument('-O', dest='out_format', required=True,
                         choices=['raw', 'qcow2', 'vmdk', 'vpc', 'vhd',
                                  'vhdx'],
                         help='The output format.')
    convert.add_argument('--disk-format', metavar='FORMAT',
                         help='The declared source format; it must match.')
    convert.add_argument('--subformat',
                         help='qemu-img subformat (vmdk: monolithicSparse, '
                         'streamOptimized; vhd/vhdx: dynamic, fixed).')

    _add_cache_commands(commands, parents)
    return parser


def _add_fetch_options(parser):
    _add_checksum(parser)
    parser.add_argument('--disk-format', metavar='FORMAT',
                        help='The declared disk format; the image must '
                        'match it.')
    parser.add_argument('--raw', action='store_true',
                        help='Convert to raw when it is not.')
    _add_arch(parser)


def _add_cache_commands(commands, parents):
    cache = commands.add_parser(
        'cache', help='The master-image cache of [image_cache]master_path.',
        description='The master-image cache of [image_cache]master_path.')
    actions = cache.add_subparsers(title='cache commands',
                                   dest='cache_command', metavar='ACTION',
                                   parser_class=_Parser)
    _command(actions, 'list', 'cache_commands:cache_list',
             'List the master images, least recently used first.', parents)
    clean = _command(actions, 'clean', 'cache_commands:cache_clean',
                     'Evict unused masters: those unused for longer than '
                     '[image_cache]ttl_minutes, then the least recently '
                     'used down to [image_cache]size_mb.', parents)
    clean.add_argument('--amount', type=int, metavar='MIB',
                       help='Also free at least this many MiB, if unused '
                       'masters allow.')
    fetch = _command(actions, 'fetch', 'cache_commands:cache_fetch',
                     'Put an image at DEST through the cache: a hardlink '
                     'to its master, downloaded once.', parents)
    fetch.add_argument('image', help=IMAGE_HELP)
    fetch.add_argument('dest', help=DEST_HELP)
    _add_fetch_options(fetch)


def _merge(namespace):
    """Fold the command's copies of the global options into the others."""
    for key, value in list(vars(namespace).items()):
        if not key.startswith(_SUB):
            continue
        delattr(namespace, key)
        merge, _sep, dest = key[len(_SUB):].partition('_')
        current = getattr(namespace, dest, None)
        if merge == _APPEND:
            value = (current or []) + value
        elif merge == _FLAG:
            value = bool(current or value)
        elif merge == _COUNT:
            value = (current or 0) + value
        setattr(namespace, dest, value)


def parse(argv):
    """Parse a command line.

    :param argv: the arguments, without the program name.
    :returns: an argparse namespace; ``target`` names the function to
        run, ``output`` the output format (``json`` with ``--json``),
        ``os_cloud`` defaults to ``$OS_CLOUD``.
    :raises: UsageError; SystemExit(0) after printing ``--help``.
    """
    parser = build()
    args = parser.parse_args(argv)
    _merge(args)
    if args.version:
        return args
    if not args.command:
        raise UsageError('a command is required: show, download, fetch, '
                         'inspect, convert or cache (see "ironic-images '
                         '--help")')
    if args.command == 'cache' and not getattr(args, 'cache_command', None):
        raise UsageError('a cache command is required: list, clean or '
                         'fetch (see "ironic-images cache --help")')
    if args.json:
        args.output = 'json'
    args.output = args.output or 'text'
    args.os_cloud = args.os_cloud or os.environ.get('OS_CLOUD') or None
    return args
