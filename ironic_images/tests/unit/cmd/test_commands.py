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

"""Tests of the ironic-images command line."""

import datetime
import hashlib
import io
import json
import os
import types
from unittest import mock

import fixtures

from ironic_images.cmd import main
from ironic_images.cmd import progress
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.image_service import file as file_service
from ironic_images.tests import base

DATA = os.urandom(3000) + b'ironic-images cli test' * 100
SHA256 = hashlib.sha256(DATA).hexdigest()


class CommandTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        # The images live in a directory that only the config file allows:
        # the test's own override is dropped so the file is what counts.
        self.store = self.useFixture(fixtures.TempDir()).path
        self.out_dir = self.useFixture(fixtures.TempDir()).path
        self.image = os.path.join(self.store, 'disk.img')
        with open(self.image, 'wb') as f:
            f.write(DATA)
        self.href = 'file://' + self.image
        self.conf_file = os.path.join(self.out_dir, 'ironic-images.conf')
        with open(self.conf_file, 'w') as f:
            f.write('[file]\nallowed_paths = %s\n' % self.store)
        self.dest = os.path.join(self.out_dir, 'dest.img')

    def run_main(self, *args, config=True):
        """Run main() with captured output: (exit code, stdout, stderr)."""
        stdout, stderr = io.StringIO(), io.StringIO()
        argv = (['--config-file', self.conf_file] if config else []) + list(
            args)
        with mock.patch('sys.stdout', stdout), \
                mock.patch('sys.stderr', stderr):
            try:
                code = main.main(argv)
            except SystemExit as error:
                # argparse exits by itself on a usage error.
                code = error.code
        return code, stdout.getvalue(), stderr.getvalue()

    def assertOneLineError(self, stderr, *fragments):
        self.assertNotIn('Traceback', stderr)
        lines = stderr.splitlines()
        self.assertEqual(1, len(lines), stderr)
        self.assertTrue(lines[0].startswith('ironic-images: '), lines[0])
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def out_dir_listing(self):
        return sorted(name for name in os.listdir(self.out_dir)
                      if name != 'ironic-images.conf')


class ShowTestCase(CommandTestCase):

    def setUp(self):
        super().setUp()
        CONF.clear_override('allowed_paths', group='file')

    def test_show(self):
        code, out, err = self.run_main('show', self.href)
        self.assertEqual(0, code, err)
        props = json.loads(out)
        st = os.stat(self.image)
        self.assertEqual(len(DATA), props['size'])
        self.assertIs(True, props['no_cache'])
        self.assertEqual(
            datetime.datetime.fromtimestamp(
                st.st_mtime, tz=datetime.timezone.utc).replace(
                    tzinfo=None).isoformat(),
            props['updated_at'])
        self.assertEqual(os.path.realpath(self.image),
                         props['properties']['path'])
        self.assertEqual('', err)

    def test_show_needs_the_config_file(self):
        # Without the config file the default allowed path applies.
        code, out, err = self.run_main('show', self.href, config=False)
        self.assertEqual(2, code)
        self.assertEqual('', out)
        self.assertOneLineError(err, 'allowed_paths')

    def test_show_refused_href(self):
        for href in ('file:///etc/passwd', 'file://host/x.img',
                     'gopher://h/x.img', 'no-scheme-here'):
            code, out, err = self.run_main('show', href)
            self.assertEqual(2, code, href)
            self.assertEqual('', out)
            self.assertOneLineError(err)

    def test_show_missing_image(self):
        code, out, err = self.run_main('show', self.href + '.missing')
        self.assertEqual(2, code)
        self.assertOneLineError(err, 'No such file')

    def test_show_debug_output_is_json(self):
        # Debug logging must not end up in the JSON on stdout.
        code, out, err = self.run_main('--debug', 'show', self.href)
        self.assertEqual(0, code, err)
        self.assertEqual(len(DATA), json.loads(out)['size'])

    def test_debug_allows_traceback(self):
        code, out, err = self.run_main('--debug', 'show',
                                       'file:///etc/passwd')
        self.assertEqual(2, code)
        self.assertIn('Traceback', out + err)
        self.assertIn('ironic-images: Validation of image href '
                      'file:///etc/passwd failed', err)

    def test_unexpected_error_is_one_line(self):
        with mock.patch.object(
                file_service.FileImageService, 'show', autospec=True,
                side_effect=RuntimeError('odd https://u:pw5@h/x')):
            code, out, err = self.run_main('show', self.href)
        self.assertEqual(1, code)
        self.assertOneLineError(err, 'RuntimeError: odd')
        self.assertNotIn('pw5', err)

    def test_main_runs_many_times(self):
        for _i in range(3):
            code, out, err = self.run_main('show', self.href)
            self.assertEqual(0, code, err)
            self.assertEqual(len(DATA), json.loads(out)['size'])
        code, out, err = self.run_main('show', 'file:///etc/passwd')
        self.assertEqual(2, code)
        code, out, err = self.run_main('show', self.href)
        self.assertEqual(0, code, err)


class ConfigCoexistenceTestCase(CommandTestCase):
    """main() shares the global CONF with the test's config fixture."""

    def test_overrides_survive_main(self):
        self.config(allowed_paths=[self.store], group='file')
        for _i in range(2):
            code, out, err = self.run_main('show', self.href, config=False)
            self.assertEqual(0, code, err)
        self.assertEqual([self.store], CONF.file.allowed_paths)

    def test_defaults_survive_main(self):
        self.cfg_fixture.set_default('tempdir', self.out_dir)
        service_type = CONF.glance.service_type
        self.run_main('show', self.href)
        self.assertEqual(self.out_dir, CONF.tempdir)
        self.assertEqual(service_type, CONF.glance.service_type)

    def test_config_fixture_still_works_after_main(self):
        self.run_main('show', self.href)
        self.config(allowed_paths=['/srv/images'], group='file')
        self.assertEqual(['/srv/images'], CONF.file.allowed_paths)
        self.config(chunk_size=128 * 1024, group='download')
        self.assertEqual(128 * 1024, CONF.download.chunk_size)
        # The sub-command option is gone again.
        self.assertNotIn('command', CONF)


class DownloadTestCase(CommandTestCase):

    def setUp(self):
        super().setUp()
        CONF.clear_override('allowed_paths', group='file')

    def _read(self, path):
        with open(path, 'rb') as f:
            return f.read()

    def test_download(self):
        code, out, err = self.run_main('download', self.href, self.dest)
        self.assertEqual(0, code, err)
        self.assertEqual(DATA, self._read(self.dest))
        self.assertEqual(['dest.img'], self.out_dir_listing())
        self.assertEqual('Wrote %s\n' % self.dest, err)
        self.assertEqual('', out)

    def test_download_with_checksum(self):
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', 'sha256:' + SHA256)
        self.assertEqual(0, code, err)
        self.assertEqual(DATA, self._read(self.dest))
        self.assertEqual('Wrote %s (verified sha256:%s)\n'
                         % (self.dest, SHA256), err)
        self.assertEqual(['dest.img'], self.out_dir_listing())
        # Same filesystem: the destination is a hardlink of the image.
        self.assertEqual(os.stat(self.image).st_ino,
                         os.stat(self.dest).st_ino)

    def test_download_bare_checksum_with_algo(self):
        sha1 = hashlib.sha1(DATA).hexdigest()
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', sha1,
                                       '--checksum-algo', 'sha1')
        self.assertEqual(0, code, err)
        self.assertIn('verified sha1:%s' % sha1, err)

    def test_download_replaces_existing_dest(self):
        with open(self.dest, 'wb') as f:
            f.write(b'old')
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', SHA256)
        self.assertEqual(0, code, err)
        self.assertEqual(DATA, self._read(self.dest))

    def test_progress_on_a_terminal(self):
        class Tty(io.StringIO):
            def isatty(self):
                return True

        stderr = Tty()
        with mock.patch('sys.stderr', stderr), \
                mock.patch('sys.stdout', io.StringIO()):
            code = main.main(['--config-file', self.conf_file, 'download',
                              self.href, self.dest])
        self.assertEqual(0, code, stderr.getvalue())
        lines = stderr.getvalue().split('\n')
        self.assertIn('\r', lines[0])
        self.assertIn('100%', lines[0])
        self.assertEqual('Wrote %s' % self.dest, lines[1])

    def test_no_progress_when_piped(self):
        code, out, err = self.run_main('download', self.href, self.dest)
        self.assertEqual(0, code, err)
        self.assertNotIn('\r', err)
        self.assertNotIn('%', err)

    def test_wrong_checksum(self):
        wrong = hashlib.sha256(b'other').hexdigest()
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', wrong)
        self.assertEqual(1, code)
        self.assertOneLineError(err, 'does not match', wrong, SHA256)
        self.assertFalse(os.path.exists(self.dest))
        self.assertEqual([], self.out_dir_listing())

    def test_wrong_checksum_keeps_existing_dest(self):
        with open(self.dest, 'wb') as f:
            f.write(b'old')
        wrong = hashlib.sha256(b'other').hexdigest()
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', wrong)
        self.assertEqual(1, code)
        self.assertEqual(b'old', self._read(self.dest))
        self.assertEqual(['dest.img'], self.out_dir_listing())

    def test_malformed_checksum(self):
        for checksum in ('zz', 'sha256:xyz', 'crc32:' + 'a' * 8):
            code, out, err = self.run_main('download', self.href,
                                           self.dest, '--checksum',
                                           checksum)
            self.assertEqual(2, code, checksum)
            self.assertOneLineError(err)
            self.assertEqual([], self.out_dir_listing())

    def test_bad_href(self):
        for href in ('file:///etc/passwd', 'file:relative/x.img',
                     'gopher://h/x', 'nothing', 'file://host/x'):
            code, out, err = self.run_main('download', href, self.dest)
            self.assertEqual(2, code, href)
            self.assertOneLineError(err)
            self.assertEqual([], self.out_dir_listing())

    def test_dest_is_a_directory(self):
        code, out, err = self.run_main('download', self.href, self.out_dir)
        self.assertEqual(2, code)
        self.assertOneLineError(err, 'is a directory')
        self.assertEqual([], self.out_dir_listing())

    def test_interrupted(self):
        with mock.patch.object(file_service.FileImageService, 'download',
                               autospec=True,
                               side_effect=KeyboardInterrupt()):
            code, out, err = self.run_main('download', self.href, self.dest)
        self.assertEqual(1, code)
        self.assertOneLineError(err, 'interrupted')
        self.assertEqual([], self.out_dir_listing())

    def test_missing_dest_directory(self):
        dest = os.path.join(self.out_dir, 'missing', 'x.img')
        code, out, err = self.run_main('download', self.href, dest)
        self.assertNotEqual(0, code)
        self.assertOneLineError(err)
        self.assertEqual([], self.out_dir_listing())


class UsageTestCase(CommandTestCase):

    def test_no_command(self):
        code, out, err = self.run_main()
        self.assertEqual(2, code)

    def test_unknown_command(self):
        code, out, err = self.run_main('explode', self.href)
        self.assertEqual(2, code)

    def test_missing_argument(self):
        code, out, err = self.run_main('download', self.href)
        self.assertEqual(2, code)

    def test_missing_config_file(self):
        code, out, err = self.run_main(
            '--config-file', os.path.join(self.out_dir, 'nope.conf'),
            'show', self.href, config=False)
        self.assertEqual(2, code)
        self.assertOneLineError(err)

    def test_broken_config_file(self):
        with open(self.conf_file, 'w') as f:
            f.write('this is not ini\n[\n')
        code, out, err = self.run_main('show', self.href)
        self.assertEqual(2, code)
        self.assertOneLineError(err)


class _Clock:
    def __init__(self, start=1000.0):
        self.now = start

    def monotonic(self):
        return self.now


class ExitCodeTestCase(base.TestCase):

    def test_exit_codes(self):
        # Some failures are ImageRefValidationFailed too, so that a host's
        # except clause around validate_href catches them; they remain
        # failures (1), not bad input (2).
        for error, code in [
                (exception.ImageRefValidationFailed(), 2),
                (exception.ImageChecksumAlgorithmFailure(), 2),
                (exception.OciImageNotSpecific(), 2),
                (exception.ImageRefUnavailable(), 1),
                (exception.ImageRefRateLimited(), 1),
                (exception.ImageServiceAuthenticationRequired(), 1),
                (exception.ImageChecksumError(), 1),
                (exception.TemporaryFailure(), 1)]:
            self.assertEqual(code, main._exit_code(error),
                             type(error).__name__)


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
        for done in range(0, 10 * 1024 * 1024, 1024 * 1024):
            self.clock.now += 1
            bar(done, 10 * 1024 * 1024)
        bar.close()
        self.assertEqual('', stream.getvalue())
        self.assertFalse(bar.enabled)

    def test_enabled_draws(self):
        stream = io.StringIO()
        bar = progress.Progress(stream, enabled=True)
        self.clock.now += 2
        bar(3 * 1024 * 1024, 12 * 1024 * 1024)
        text = stream.getvalue()
        self.assertTrue(text.startswith('\r'), repr(text))
        self.assertIn('3.0 MiB / 12.0 MiB', text)
        self.assertIn(' 25%', text)
        self.assertIn('1.5 MiB/s', text)
        self.assertNotIn('\n', text)
        bar.close()
        self.assertTrue(stream.getvalue().endswith('\n'))
        self.assertEqual(1, stream.getvalue().count('\n'))

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
        self.assertIn('\r512 B  512 B/s', stream.getvalue())
        self.assertNotIn('%', stream.getvalue())

    def test_close_without_drawing(self):
        stream = io.StringIO()
        bar = progress.Progress(stream, enabled=True)
        bar.close()
        self.assertEqual('', stream.getvalue())

    def test_enabled_follows_isatty(self):
        class Tty(io.StringIO):
            def isatty(self):
                return True

        self.assertFalse(progress.Progress(io.StringIO()).enabled)
        tty = Tty()
        bar = progress.Progress(tty)
        self.assertTrue(bar.enabled)
        self.clock.now += 1
        bar(2 * 1024 ** 3, 4 * 1024 ** 3)
        self.assertIn('2.0 GiB / 4.0 GiB   50%', tty.getvalue())

    def test_default_stream_is_stderr(self):
        stderr = io.StringIO()
        with mock.patch('sys.stderr', stderr):
            bar = progress.Progress(enabled=True)
            self.clock.now += 1
            bar(10, 20)
            bar.close()
        self.assertIn('10 B / 20 B', stderr.getvalue())
