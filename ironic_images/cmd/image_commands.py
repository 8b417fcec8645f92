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

"""The ``fetch``, ``inspect`` and ``convert`` sub-commands.

A local file goes through the pipeline a ``file://`` href does
(decompression, a tar layer's disk, inspection, the safety gate), except
a plain one (neither compressed nor a tar archive) that ``inspect`` or
``convert`` reads in place: the pipeline would only copy it.
"""

import os

from ironic_images.cmd import commands
from ironic_images.cmd import output
from ironic_images.cmd import parser
from ironic_images.cmd import progress
from ironic_images.cmd import sources
from ironic_images.common import masking
from ironic_images import exception
from ironic_images.fetch import fetcher
from ironic_images.formats import gate
from ironic_images.formats import inspection
from ironic_images.formats import names as formats
from ironic_images.image_service import file as file_service
from ironic_images import image_utils
from ironic_images.sink import decompress
from ironic_images.sink import untar

_REPORT_ORDER = ('image', 'href', 'format', 'virtual_size', 'size',
                 'compression', 'checksum')


def is_plain_file(path):
    """Whether a local file is read as it is: not compressed, not a tar.

    :param path: the file.
    :returns: False too when it cannot be read (the pipeline says why).
    """
    try:
        with open(path, 'rb') as image_file:
            head = image_file.read(untar.BLOCK)
    except OSError:
        return False
    return (decompress.detect_compression(head) is None
            and not untar.is_tar_header(head))


def _step(source):
    return 'reading' if source.local else 'downloading'


def fetch(args):
    """Fetch an image to a file: verified, decompressed, inspected."""
    dest = commands.check_destination(args.dest)
    function = image_utils.fetch_to_raw if args.raw else image_utils.fetch
    with sources.open_image(args.image, args, args.overrides) as source, \
            progress.Progress(labels=(_step(source), 'converting')) as bar:
        fetched = function(None, source.href, dest,
                           checksum=args.checksum,
                           checksum_algo=args.checksum_algo,
                           expected_format=args.disk_format,
                           image_auth_data=source.auth_data,
                           progress=bar.callback(), cpu_arch=args.arch)
    fields = {'dest': args.dest, 'href': commands.display_href(source,
                                                               fetched.href),
              'format': fetched.format,
              'source_format': fetched.source_format,
              'size': fetched.size, 'virtual_size': fetched.virtual_size,
              'compression': fetched.compression,
              'checksum': fetched.checksum, 'member': fetched.member}
    details = [fetched.format if fetched.format == fetched.source_format
               else '%s from %s' % (fetched.format, fetched.source_format)]
    if fetched.virtual_size:
        details.append('%s virtual' % output.human_size(
            fetched.virtual_size))
    if fetched.compression:
        details.append('decompressed from %s' % fetched.compression)
    if fetched.member:
        details.append('from %s in the tar layer' % fetched.member)
    if fetched.checksum:
        details.append('verified %s' % fetched.checksum)
    line = 'Wrote %s (%s)' % (args.dest, ', '.join(details))
    if fetched.href != source.href:
        line += ' from %s' % fields['href']
    return output.Result(fields, [line])


def _report(name, fetched, detected, expected_format):
    """Run the safety gate and say what each stage of it decided."""
    failed_stage = reason = None
    try:
        fmt = gate.check_image(detected, name, expected_format)
        verdict = 'accepted'
    except exception.ImageUnacceptable as error:
        fmt = detected.format
        check = error.kwargs.get('check')
        failed_stage, reason = gate.stage_of(check), str(error)
        verdict = 'refused: %s check failed' % check
    checks = []
    reached = True
    for stage, _names in gate.STAGES:
        if stage == 'vmdk' and detected.format != 'vmdk':
            continue
        if stage == 'format_match' and not expected_format:
            continue
        status = 'passed' if reached else 'not checked'
        if stage == failed_stage:
            status, reached = 'failed', False
        checks.append({'name': stage, 'status': status,
                       'reason': reason if status == 'failed' else None})
    return {'image': name, 'format': fmt, 'matches': list(detected.matches),
            'virtual_size': detected.virtual_size,
            'size': fetched.size if fetched else detected.data_size,
            'compression': fetched.compression if fetched else None,
            'checksum': fetched.checksum if fetched else None,
            'checks': checks, 'verdict': verdict}


def _report_lines(report):
    lines = [line for line in output.field_lines(
        {key: report[key] for key in _REPORT_ORDER
         if report.get(key) is not None}, _REPORT_ORDER)]
    width = max(len(line.partition('  ')[0]) for line in lines)
    for check in report['checks']:
        line = '%-*s  %-18s %s' % (width, 'check', check['name'],
                                   check['status'])
        if check['reason']:
            line += ' (%s)' % check['reason']
        lines.append(line)
    lines.append('%-*s  %s' % (width, 'verdict', report['verdict']))
    return lines


def inspect(args):
    """Say what an image is and whether it passes the safety checks."""
    with sources.open_image(args.image, args, args.overrides) as source:
        if (source.local and not args.checksum
                and is_plain_file(source.local)):
            detected = inspection.inspect_file(source.local, source.local)
            report = _report(args.image, None, detected, args.disk_format)
        else:
            with image_utils.temporary_dir() as scratch, \
                    progress.Progress(labels=(_step(source),)) as bar:
                fetched, detected = image_utils.fetch_unchecked(
                    None, source.href, os.path.join(scratch, 'image'),
                    checksum=args.checksum,
                    checksum_algo=args.checksum_algo,
                    image_auth_data=source.auth_data,
                    progress=bar.callback(), cpu_arch=args.arch)
                report = _report(args.image, fetched, detected,
                                 args.disk_format)
            if fetched.href != source.href:
                report['href'] = commands.display_href(source, fetched.href)
    # Printed for a person: hrefs masked, as in the logs.
    report = masking.mask_hrefs_in(report)
    # A refused image is an answer, not an error: exit 1 so that scripts
    # can branch on it.
    return output.Result(report, _report_lines(report),
                         exit_code=0 if report['verdict'] == 'accepted'
                         else 1)


def convert(args):
    """Convert a local image, after the safety checks pass."""
    dest = commands.check_destination(args.dest)
    path = sources.local_path(args.source)
    if path is None:
        raise parser.UsageError('%s is not a local file: "ironic-images '
                                'fetch" it first' % args.source)
    if not os.path.exists(path):
        raise parser.UsageError('%s: no such file' % path)
    if is_plain_file(path):
        detected = inspection.inspect_file(path, path)
        src_format = gate.check_image(detected, path, args.disk_format)
        with progress.Progress(labels=('converting',)) as bar:
            image_utils.convert_image(path, dest, args.out_format,
                                      formats.qemu_name(src_format),
                                      out_subformat=args.subformat,
                                      image_href=path,
                                      progress=bar.callback())
        compression = None
    else:
        # Decompressed (or taken out of its tar archive) into a temp
        # file, through the safety gate, then converted.
        with file_service.trusted_local_file(path) as href, \
                image_utils.temporary_dir() as scratch, \
                progress.Progress(labels=('reading', 'converting')) as bar:
            request = image_utils.FetchRequest(
                None, href, os.path.join(scratch, 'image'),
                expected_format=args.disk_format, progress=bar.callback())
            with fetcher.fetched_part(request) as fetched:
                src_format, compression = (fetched.format,
                                           fetched.compression)
                fetcher.convert_fetched(fetched, dest, args.out_format, href,
                                        out_subformat=args.subformat,
                                        progress=bar.callback())
    fields = {'dest': args.dest, 'format': args.out_format,
              'source_format': src_format, 'compression': compression,
              'size': commands.written_size(dest)}
    details = '%s from %s' % (args.out_format, src_format)
    if compression:
        details += ', decompressed from %s' % compression
    return output.Result(fields, ['Wrote %s (%s)' % (args.dest, details)])
