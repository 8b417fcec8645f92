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

"""Tests of what the command prints: results, progress, logs, start-up."""

import io
import json
import logging
import subprocess
import sys
import types
from unittest import mock

import fixtures

from ironic_images.cmd import output
from ironic_images.cmd import parser
from ironic_images.cmd import progress
from ironic_images.image_service import file as file_service
from ironic_images.tests import base
from ironic_images.tests.unit.cmd import cli_base

MIB = 1024 * 1024


def _args(output_format='text', columns=None, dest=None):
    return types.SimpleNamespace(output=output_format, columns=columns,
                                 dest=dest)


class ResultTestCase(base.TestCase):

    def write(self, result, *args, **kwargs):
        stream = io.StringIO()
        output.write(result, _args(*args, **kwargs), stream)
        return stream.getvalue()

    def test_fields(self):
        result = output.Result({'b': 2, 'a': {'x': True, 'y': None}},
                               ['summary line'])
        self.assertEqual('summary line\n', self.write(result))
        self.assertEqual({'b': 2, 'a': {'x': True, 'y': None}},
                         json.loads(self.write(result, 'json')))
        self.assertEqual('x=true, y=\n2\n', self.write(result, 'value'))
        self.assertEqual('2\n', self.write(result, 'value', ['b']))
        self.assertEqual('b  2\n', self.write(result, 'text', ['b']))
        self.assertRaisesRegex(parser.UsageError, 'no field c',
                               self.write, result, 'json', ['c'])

    def test_fields_without_text(self):
        result = output.Result({'long_name': 1, 'x': 'y'})
        self.assertEqual('long_name  1\nx          y\n', self.write(result))

    def test_rows(self):
        result = output.Result(rows=[{'a': 1, 'b': 'x'},
                                     {'a': 22, 'b': None}],
                               text=['a table'])
        self.assertEqual('a table\n', self.write(result))
        self.assertEqual('1 x\n22 \n', self.write(result, 'value'))
        self.assertEqual('a\n1\n22\n', self.write(result, 'text', ['a']))
        self.assertEqual([{'b': 'x'}, {'b': None}],
                         json.loads(self.write(result, 'json', ['b'])))

    def test_result_goes_to_stderr_when_the_image_takes_stdout(self):
        self.assertIs(sys.stdout, output.stream_for(_args(dest='x')))
        self.assertIs(sys.stderr, output.stream_for(_args(dest='-')))

    def test_human_size(self):
        self.assertEqual(['?', '512 B', '1.5 KiB', '2.0 MiB', '3.0 GiB'],
                         [output.human_size(n) for n in (
                             None, 512, 1536, 2 * MIB, 3 * 1024 * MIB)])


class _Clock:
    def __init__(self, start=1000.0):
        self.now = start

    def monotonic(self):
        return self.now


class ProgressTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.clock = _Clock()
        self.useFixture(fixtures.MonkeyPatch(
            'ironic_images.cmd.progress.time',
            types.SimpleNamespace(monotonic=self.clock.monotonic)))

    def test_disabled_draws_nothing(self):
        stream = io.StringIO()
        bar = progress.Progress(stream, enabled=False)
        for done in range(0, 10 * MIB, MIB):
            self.clock.now += 1
            bar(done, 10 * MIB)
        bar.close()
        self.assertEqual('', stream.getvalue())
        self.assertIsNone(bar.callback())

    def test_rate_and_eta(self):
        stream = io.StringIO()
        bar = progress.Progress(stream, enabled=True,
                                labels=('downloading',))
        self.assertIs(bar, bar.callback())
        self.clock.now += 2
        bar(3 * MIB, 12 * MIB)
        text = stream.getvalue()
        self.assertEqual('\rdownloading  3.0 MiB / 12.0 MiB   25%  '
                         '1.5 MiB/s  ETA 0:06\033[K', text)
        self.clock.now += 6
        bar(12 * MIB, 12 * MIB)
        self.assertTrue(stream.getvalue().endswith(
            '12.0 MiB / 12.0 MiB  100%  1.5 MiB/s  in 0:08\033[K'))
        # Drawn again later (at the end of the command): the same figures.
        self.clock.now += 30
        bar.close()
        self.assertTrue(stream.getvalue().endswith(
            '12.0 MiB / 12.0 MiB  100%  1.5 MiB/s  in 0:08\033[K\n'))
        self.assertEqual(1, stream.getvalue().count('\n'))
        self.assertTrue(stream.getvalue().endswith('\n'))

    def test_eta_follows_a_change_of_speed(self):
        stream = io.StringIO()
        bar = progress.Progress(stream, enabled=True)
        for _second in range(20):
            self.clock.now += 1
            bar(int(bar._state[0] if bar._state else 0) + MIB, 1000 * MIB)
        for _second in range(10):
            self.clock.now += 1
            bar(bar._state[0] + 10 * MIB, 1000 * MIB)
        # 10 MiB/s over the last seconds, not the average since the start.
        self.assertIn(' 10.0 MiB/s', stream.getvalue().rsplit('\r', 1)[1])

    def test_next_step_on_a_line_of_its_own(self):
        stream = io.StringIO()
        bar = progress.Progress(stream, enabled=True,
                                labels=('downloading', 'converting'))
        self.clock.now += 1
        bar(MIB, 2 * MIB)
        self.clock.now += 1
        bar(2 * MIB, 2 * MIB)
        self.clock.now += 1
        bar(0, 64 * MIB)
        self.clock.now += 1
        bar(32 * MIB, 64 * MIB)
        bar.close()
        lines = stream.getvalue().split('\n')
        self.assertEqual(3, len(lines), lines)
        self.assertIn('\rdownloading  2.0 MiB / 2.0 MiB  100%', lines[0])
        self.assertTrue(lines[1].startswith('\rconverting  0 B / 64.0 MiB'),
                        lines[1])
        self.assertIn('32.0 MiB / 64.0 MiB   50%', lines[1])
        self.assertEqual('', lines[2])

    def test_a_restart_before_the_end_is_the_same_step(self):
        # A download resumed from the first byte is not a new step.
        stream = io.StringIO()
        bar = progress.Progress(stream, enabled=True,
                                labels=('downloading', 'converting'))
        self.clock.now += 1
        bar(MIB, 2 * MIB)
        self.clock.now += 1
        bar(0, 2 * MIB)
        bar.close()
        self.assertNotIn('converting', stream.getvalue())

    def test_throttled(self):
        stream = io.StringIO()
        bar = progress.Progress(stream, enabled=True)
        self.clock.now += 1
        bar(1024, 4096)
        drawn = stream.getvalue()
        self.clock.now += 0.05
        bar(2048, 4096)
        self.assertEqual(drawn, stream.getvalue())
        self.clock.now += 0.5
        bar(3072, 4096)
        self.assertIn('3.0 KiB / 4.0 KiB   75%', stream.getvalue())

    def test_unknown_total(self):
        stream = io.StringIO()
        bar = progress.Progress(stream, enabled=True)
        self.clock.now += 1
        bar(512, None)
        self.assertEqual('\r512 B  512 B/s\033[K', stream.getvalue())

    def test_close_without_drawing(self):
        stream = io.StringIO()
        with progress.Progress(stream, enabled=True):
            pass
        self.assertEqual('', stream.getvalue())

    def test_enabled_follows_isatty(self):
        self.assertFalse(progress.Progress(io.StringIO()).enabled)
        tty = cli_base.Tty()
        bar = progress.Progress(tty)
        self.assertTrue(bar.enabled)
        self.clock.now += 1
        bar(2 * 1024 * MIB, 4 * 1024 * MIB)
        self.assertIn('2.0 GiB / 4.0 GiB   50%', tty.getvalue())

    def test_long_eta(self):
        stream = io.StringIO()
        bar = progress.Progress(stream, enabled=True)
        self.clock.now += 1
        bar(MIB, 7201 * MIB)
        self.assertIn('ETA 2:00:00', stream.getvalue())


class QuietTestCase(cli_base.CommandTestCase):
    """Logs stay out of the way unless asked for."""

    def _show_logging(self, *args):
        def _show(service, href):
            log = logging.getLogger('ironic_images.image_service.file')
            log.info('an info line')
            log.warning('a warning line')
            log.error('an error line')
            import warnings
            warnings.warn('a python warning', UserWarning)
            return {'size': 1}

        with mock.patch.object(file_service.FileImageService, 'show',
                               autospec=True, side_effect=_show):
            return self.run_main('show', self.href, '-c', 'size', *args)

    def test_nothing_but_the_result_by_default(self):
        code, out, err = self._show_logging()
        self.assertEqual((0, 'size  1\n', ''), (code, out, err))

    def test_verbose_lines_are_short(self):
        code, out, err = self._show_logging('-v')
        self.assertEqual(['ironic-images: INFO: an info line',
                          'ironic-images: WARNING: a warning line',
                          'ironic-images: ERROR: an error line'],
                         err.splitlines()[:3])
        self.assertIn('a python warning', err)

    def test_logging_is_put_back(self):
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        self._show_logging('--debug')
        self.assertEqual((handlers, level), (root.handlers, root.level))


class StartupTestCase(base.TestCase):
    """--help imports nothing of the library (it is what makes it slow)."""

    def test_help_imports_no_library_module(self):
        code = ('import sys, io, contextlib\n'
                'from ironic_images.cmd import main\n'
                'for argv in (["--help"], ["fetch", "--help"], '
                '["--version"], ["cache"]):\n'
                '    with contextlib.redirect_stdout(io.StringIO()), '
                'contextlib.redirect_stderr(io.StringIO()):\n'
                '        main.main(argv)\n'
                'print(sorted(m for m in sys.modules if m.split(".")[0] in '
                '("oslo_config", "oslo_log", "keystoneauth1", "requests", '
                '"stevedore") or m.startswith("ironic_images.") and '
                'not m.startswith("ironic_images.cmd")))\n')
        result = subprocess.run([sys.executable, '-c', code],
                                capture_output=True, text=True, check=True)
        self.assertEqual('[]', result.stdout.strip(), result.stderr)
