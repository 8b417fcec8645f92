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

"""What a command prints: for a person, as JSON, or values only.

A command answers with a :class:`Result`: named fields (or rows of them,
for a listing) and the text a person reads. ``-f json`` prints the
fields, ``-f value`` their values one per line (a row per line for a
listing), ``-c FIELD`` keeps only the fields named. Results go to
standard output; progress, logs and errors to standard error.
"""

import datetime
import json
import sys

from oslo_utils import units

from ironic_images.cmd import parser


class Result:
    """What a command answers.

    :param fields: a dict of named values (nested dicts and lists are
        kept for JSON), or None for a listing.
    :param text: the lines a person reads (``-f text``), without ``-c``;
        None to print the fields as ``name  value`` lines.
    :param rows: for a listing: a list of dicts, one per item.
    :param exit_code: the exit code once printed (an inspection that
        refuses the image exits 1).
    """

    def __init__(self, fields=None, text=None, rows=None, exit_code=0):
        self.fields = fields
        self.text = text
        self.rows = rows
        self.exit_code = exit_code


#: The destination that stands for standard output.
STDOUT = '-'


def stream_for(args):
    """Where a command's result goes: standard output, or standard error.

    Standard error when the image itself goes to standard output (a
    destination of ``-``).

    :param args: the parsed command line.
    """
    if getattr(args, 'dest', None) == STDOUT:
        return sys.stderr
    return sys.stdout


def _json_default(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return str(value)


def _select(fields, columns):
    if not columns:
        return fields
    unknown = [c for c in columns if c not in fields]
    if unknown:
        raise parser.UsageError('no field %s; the fields are: %s' % (
            ', '.join(unknown), ', '.join(sorted(fields))))
    return {column: fields[column] for column in columns}


def _scalar(value):
    """One value as text: a dict as key=value pairs, None as empty."""
    if value is None:
        return ''
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return ', '.join('%s=%s' % (key, _scalar(value[key]))
                         for key in sorted(value))
    if isinstance(value, (list, tuple)):
        return ', '.join(_scalar(item) for item in value)
    return str(value)


def field_lines(fields, order=None):
    """``name  value`` lines, aligned, for a person.

    :param fields: the dict to print.
    :param order: the names to print first, in this order; the others
        follow sorted.
    :returns: a list of lines.
    """
    names = [name for name in (order or ()) if name in fields]
    names += sorted(name for name in fields if name not in names)
    width = max((len(name) for name in names), default=0)
    return ['%-*s  %s' % (width, name, _scalar(fields[name]))
            for name in names]


def write(result, args, stream):
    """Print a result as ``args.output`` and ``args.columns`` ask.

    :param result: a :class:`Result`.
    :param args: the parsed command line.
    :param stream: where to print (standard output).
    :raises: UsageError for a ``-c`` that names no field.
    """
    columns = args.columns
    if result.rows is not None:
        rows = [_select(row, columns) for row in result.rows]
        if args.output == 'json':
            lines = [json.dumps(rows, indent=2, sort_keys=True,
                                default=_json_default)]
        elif args.output == 'value':
            lines = [' '.join(_scalar(row[key]) for key in
                              (columns or sorted(row))) for row in rows]
        else:
            lines = (result.text if result.text is not None
                     and not columns else [_table(rows, columns)])
    else:
        fields = _select(result.fields, columns)
        if args.output == 'json':
            lines = [json.dumps(fields, indent=2, sort_keys=True,
                                default=_json_default)]
        elif args.output == 'value':
            lines = [_scalar(fields[key])
                     for key in (columns or sorted(fields))]
        elif result.text is not None and not columns:
            lines = result.text
        else:
            lines = field_lines(fields, columns)
    for line in lines:
        stream.write(line + '\n')
    stream.flush()


def _table(rows, columns):
    names = columns or sorted({key for row in rows for key in row})
    cells = [names] + [[_scalar(row.get(name)) for name in names]
                       for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(names))]
    return '\n'.join('  '.join(cell.ljust(width) for cell, width
                               in zip(line, widths)).rstrip()
                     for line in cells)


def human_size(size):
    """A byte count for a person: ``1.3 MiB``.

    :param size: bytes, or None.
    :returns: the text; ``?`` for None.
    """
    if size is None:
        return '?'
    for unit, factor in (('GiB', units.Gi), ('MiB', units.Mi),
                         ('KiB', units.Ki)):
        if size >= factor:
            return '%.1f %s' % (size / factor, unit)
    return '%d B' % size
