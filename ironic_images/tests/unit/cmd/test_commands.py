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

"""Tests of show and download, and of what every command shares."""

import datetime
import hashlib
import json
import os
from unittest import mock

import fixtures

from ironic_images.cmd import main
from ironic_images.conf import CONF
from ironic_images import exception
from ironic_images.image_service import file as file_service
from ironic_images.tests.unit.cmd import cli_base

DATA = cli_base.CommandTestCase.DATA
SHA256 = hashlib.sha256(DATA).hexdigest()


class ShowTestCase(cli_base.CommandTestCase):

    def test_show_as_json(self):
        code, out, err = self.run_main('show', self.href, '-f', 'json')
        self.assertEqual((0, ''), (code, err))
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
        self.assertEqual(self.href, props['href'])
        self.assertNotIn('resolved_from', props)

    def test_show_for_a_person(self):
        code, out, err = self.run_main('show', self.href)
        self.assertEqual((0, ''), (code, err))
        lines = out.splitlines()
        self.assertEqual(['href', self.href], lines[0].split())
        self.assertEqual(['size', str(len(DATA))], lines[1].split())
        self.assertIn('properties  path=%s' % os.path.realpath(self.image),
                      lines)

    def test_value_and_columns(self):
        code, out, err = self.run_main('show', self.href, '-f', 'value',
                                       '-c', 'size', '-c', 'no_cache')
        self.assertEqual((0, '%d\ntrue\n' % len(DATA), ''), (code, out, err))
        code, out, err = self.run_main('show', self.href, '-c', 'size',
                                       '-f', 'json')
        self.assertEqual({'size': len(DATA)}, json.loads(out))
        code, out, err = self.run_main('show', self.href, '-c', 'nope')
        self.assertEqual((2, ''), (code, out))
        self.assertOneLineError(err, 'no field nope', 'size')

    def test_file_href_still_needs_the_allow_list(self):
        # A file:// href is what a service is handed: its checks stay.
        code, out, err = self.run_main('show', self.href, config=False)
        self.assertEqual((2, ''), (code, out))
        self.assertOneLineError(err, 'allowed_paths')

    def test_show_refused_href(self):
        for href in ('file:///etc/passwd', 'file://host/x.img',
                     'gopher://h/x.img'):
            code, out, err = self.run_main('show', href)
            self.assertEqual((2, ''), (code, out), href)
            self.assertOneLineError(err)

    def test_show_missing_image(self):
        code, out, err = self.run_main('show', self.href + '.missing')
        self.assertEqual(2, code)
        self.assertOneLineError(err, 'No such file')

    def test_debug_output_is_still_json(self):
        code, out, err = self.run_main('show', self.href, '--debug', '-f',
                                       'json')
        self.assertEqual(0, code, err)
        self.assertEqual(len(DATA), json.loads(out)['size'])
        self.assertIn('DEBUG', err)

    def test_debug_allows_traceback(self):
        code, out, err = self.run_main('show', 'file:///etc/passwd', '-d')
        self.assertEqual(2, code)
        self.assertIn('Traceback', err)
        self.assertEqual('ironic-images: Validation of image href '
                         'file:///etc/passwd failed, reason: /etc/passwd is '
                         'under /etc, which is never allowed',
                         err.splitlines()[-1])

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
            code, out, err = self.run_main('show', self.href, '-f', 'json')
            self.assertEqual(0, code, err)
            self.assertEqual(len(DATA), json.loads(out)['size'])
        code, out, err = self.run_main('show', 'file:///etc/passwd')
        self.assertEqual(2, code)
        code, out, err = self.run_main('show', self.href)
        self.assertEqual(0, code, err)


class LocalFileTestCase(cli_base.CommandTestCase):
    """A path typed at a terminal is the person's: no allow-list."""

    def test_show_a_local_file_without_any_config(self):
        # Back to where the test started: the store's directory is gone
        # once the test ends, and the next test in this process would be
        # left in a removed directory.
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(self.store)
        code, out, err = self.run_main('show', 'disk.img', '-f', 'json',
                                       config=False)
        self.assertEqual((0, ''), (code, err))
        props = json.loads(out)
        self.assertEqual(('disk.img', len(DATA)),
                         (props['href'], props['size']))

    def test_download_a_local_file(self):
        code, out, err = self.run_main('download', self.image, self.dest,
                                       '--checksum', SHA256, config=False)
        self.assertEqual((0, ''), (code, err))
        self.assertEqual(DATA, self.read(self.dest))
        self.assertIn('verified sha256:' + SHA256, out)

    def test_only_that_file(self):
        # The file named is allowed for this run only.
        code, out, err = self.run_main('show', self.image, config=False)
        self.assertEqual(0, code, err)
        self.assertRaises(exception.ImageRefValidationFailed,
                          file_service.FileImageService().show, self.href)

    def test_missing_local_file(self):
        for name in ('nope.qcow2', os.path.join(self.store, 'nope.qcow2'),
                     'dir/nope:1.qcow2'):
            for command in (['show', name], ['inspect', name],
                            ['download', name, self.dest],
                            ['fetch', name, self.dest]):
                code, out, err = self.run_main(*command, config=False)
                self.assertEqual((2, ''), (code, out), command)
                self.assertOneLineError(err, '%s: no such file' % name)
        self.assertEqual([], self.out_dir_listing())

    def test_a_directory(self):
        code, out, err = self.run_main('show', self.store, config=False)
        self.assertEqual(2, code)
        self.assertOneLineError(err, 'not a regular file')

    def test_blocked_directories_stay_blocked(self):
        code, out, err = self.run_main('show', '/etc/hostname',
                                       config=False)
        self.assertEqual(2, code)
        self.assertOneLineError(err, 'never allowed')

    def test_glance_id_is_not_a_path(self):
        code, out, err = self.run_main(
            'show', '6a7e3c3e-3a64-4b1f-9a8d-2f0e4d1c9b10', config=False)
        self.assertNotIn('no such file', err)


class GlobalOptionsTestCase(cli_base.CommandTestCase):
    """Options go before or after the command, as people type them."""

    def test_config_and_debug_after_the_command(self):
        for argv in (['--config-file', self.conf_file, '-d', 'show',
                      self.href],
                     ['show', self.href, '--config-file', self.conf_file,
                      '--debug'],
                     ['show', '--debug', '--config-file', self.conf_file,
                      self.href]):
            code, out, err = self.run_main(*argv, config=False)
            self.assertEqual(0, code, err)
            self.assertIn('DEBUG', err)

    def test_config_files_before_and_after_add_up(self):
        other = os.path.join(self.out_dir, 'other.conf')
        with open(other, 'w') as f:
            f.write('[DEFAULT]\nallow_md5_checksum = true\n')
        md5 = hashlib.md5(DATA).hexdigest()
        code, out, err = self.run_main(
            '--config-file', other, 'download', self.href, self.dest,
            '--checksum', md5)
        self.assertEqual(0, code, err)
        self.assertIn('verified md5:', out)

    def test_config_dir(self):
        confd = os.path.join(self.out_dir, 'conf.d')
        os.mkdir(confd)
        os.rename(self.conf_file, os.path.join(confd, 'x.conf'))
        code, out, err = self.run_main('show', self.href, '--config-dir',
                                       confd, config=False)
        self.assertEqual(0, code, err)

    def test_version(self):
        for argv in (['--version'], ['--version', 'show', 'x']):
            code, out, err = self.run_main(*argv, config=False)
            self.assertEqual(0, code)
            self.assertRegex(out, r'^ironic-images \S+\n$')
            self.assertEqual('', err)

    def test_help(self):
        for argv in (['--help'], ['show', '--help'], ['cache', 'fetch',
                                                      '-h']):
            code, out, err = self.run_main(*argv, config=False)
            self.assertEqual((0, ''), (code, err))
            self.assertIn('usage: ironic-images', out)
            self.assertIn('--config-file', out)

    def test_old_format_option_says_what_it_became(self):
        code, out, err = self.run_main('fetch', self.href, self.dest,
                                       '--format', 'qcow2')
        self.assertEqual((2, ''), (code, out))
        self.assertOneLineError(err, "'qcow2' is not an output format",
                                '--disk-format')

    def test_json_is_still_understood(self):
        code, out, err = self.run_main('inspect', self.image, '--json')
        self.assertEqual('raw', json.loads(out)['format'])


class UsageTestCase(cli_base.CommandTestCase):

    def test_usage_errors_are_one_line(self):
        for argv in ([], ['explode', self.href], ['download', self.href],
                     ['cache'], ['show', self.href, '--no-such-option'],
                     ['convert', self.image, self.dest, '-O', 'ext4']):
            code, out, err = self.run_main(*argv)
            self.assertEqual((2, ''), (code, out), argv)
            self.assertOneLineError(err, '--help')

    def test_missing_config_file(self):
        code, out, err = self.run_main(
            'show', self.href, '--config-file',
            os.path.join(self.out_dir, 'nope.conf'), config=False)
        self.assertEqual(2, code)
        self.assertOneLineError(err, 'nope.conf')

    def test_broken_config_file(self):
        self.write_config('this is not ini\n[\n')
        code, out, err = self.run_main('show', self.href)
        self.assertEqual(2, code)
        self.assertOneLineError(err)


class ConfigCoexistenceTestCase(cli_base.CommandTestCase):
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

    def test_command_line_settings_end_with_the_run(self):
        code, out, err = self.run_main('show', self.href, '--insecure')
        self.assertEqual(0, code, err)
        self.assertEqual('True', CONF.webserver_verify_ca)
        self.assertFalse(CONF.oci.permit_fallback_to_http_transport)


class DownloadTestCase(cli_base.CommandTestCase):

    def test_download(self):
        code, out, err = self.run_main('download', self.href, self.dest)
        self.assertEqual((0, ''), (code, err))
        self.assertEqual(DATA, self.read(self.dest))
        self.assertEqual(['dest.img'], self.out_dir_listing())
        self.assertEqual('Wrote %s (4.3 KiB)\n' % self.dest, out)

    def test_download_with_checksum(self):
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', 'sha256:' + SHA256)
        self.assertEqual((0, ''), (code, err))
        self.assertEqual(DATA, self.read(self.dest))
        self.assertEqual('Wrote %s (4.3 KiB, verified sha256:%s)\n'
                         % (self.dest, SHA256), out)
        self.assertEqual(['dest.img'], self.out_dir_listing())
        # Same filesystem: the destination is a hardlink of the image.
        self.assertEqual(os.stat(self.image).st_ino,
                         os.stat(self.dest).st_ino)

    def test_download_as_json(self):
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', SHA256, '-f', 'json')
        self.assertEqual({'dest': self.dest, 'href': self.href,
                          'size': len(DATA),
                          'checksum': 'sha256:' + SHA256}, json.loads(out))

    def test_download_reports_what_download_returned(self):
        # The contract: download() returns what it verified; a driver
        # need not keep Ironic's transfer_verified_checksum attribute.
        real = file_service.FileImageService.download

        def returns_only(service, *args, **kwargs):
            verified = real(service, *args, **kwargs)
            service._transfer_verified_checksum = None
            return verified

        self.useFixture(fixtures.MockPatchObject(
            file_service.FileImageService, 'download', returns_only))
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', 'sha256:' + SHA256)
        self.assertEqual(0, code, err)
        self.assertIn('verified sha256:%s' % SHA256, out)

    def test_download_bare_checksum_with_algo(self):
        sha1 = hashlib.sha1(DATA).hexdigest()
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', sha1,
                                       '--checksum-algo', 'sha1')
        self.assertEqual(0, code, err)
        self.assertIn('verified sha1:%s' % sha1, out)

    def test_download_replaces_existing_dest(self):
        with open(self.dest, 'wb') as f:
            f.write(b'old')
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', SHA256)
        self.assertEqual(0, code, err)
        self.assertEqual(DATA, self.read(self.dest))

    def test_progress_on_a_terminal(self):
        stderr = cli_base.Tty()
        code, out, _err = self.run_main('download', self.href, self.dest,
                                        stderr=stderr)
        self.assertEqual(0, code, stderr.getvalue())
        # One progress line, ended; nothing else on standard error.
        lines = stderr.getvalue().split('\n')
        self.assertEqual(2, len(lines), lines)
        self.assertEqual('', lines[1])
        self.assertTrue(lines[0].startswith('\rdownloading  '), lines[0])
        self.assertIn('100%', lines[0])
        self.assertEqual('Wrote %s (4.3 KiB)\n' % self.dest, out)

    def test_no_progress_when_piped(self):
        code, out, err = self.run_main('download', self.href, self.dest)
        self.assertEqual((0, ''), (code, err))

    def test_wrong_checksum(self):
        wrong = hashlib.sha256(b'other').hexdigest()
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', wrong)
        self.assertEqual((1, ''), (code, out))
        self.assertOneLineError(err, 'does not match', wrong, SHA256)
        self.assertEqual([], self.out_dir_listing())

    def test_wrong_checksum_keeps_existing_dest(self):
        with open(self.dest, 'wb') as f:
            f.write(b'old')
        wrong = hashlib.sha256(b'other').hexdigest()
        code, out, err = self.run_main('download', self.href, self.dest,
                                       '--checksum', wrong)
        self.assertEqual(1, code)
        self.assertEqual(b'old', self.read(self.dest))
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
                     'gopher://h/x', 'file://host/x'):
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
        self.assertEqual(2, code)
        self.assertOneLineError(err, 'does not exist')
        self.assertEqual([], self.out_dir_listing())


class ExitCodeTestCase(cli_base.CommandTestCase):

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
