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

"""The ironic-images command as a person runs it, against real servers.

Every test runs the command in a subprocess, as a shell would, with a
home directory of its own (no credentials of the machine), and checks
what it printed where: results on standard output, at most one line on
standard error when it fails (nothing when it succeeds, unless a
terminal shows progress), the exit code, and no traceback.
"""

import base64
import json
import os
import socket
import subprocess
import sys
import threading

from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import glance
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.functional.servers import oci_push
from ironic_images.tests.functional.servers import registry
from ironic_images.tests.functional.servers import tls
from ironic_images.tests.functional import test_fetch

SIZE = test_fetch.SIZE
read = test_fetch.read


class CommandLineTestCase(test_fetch.FetchTestCase):
    """The command in a subprocess, in a home of its own."""

    def setUp(self):
        super().setUp()
        self.home = os.path.join(self.tmp, 'home')
        os.mkdir(self.home)
        self.env = {key: value for key, value in os.environ.items()
                    if not key.startswith(('OS_', 'REGISTRY_AUTH',
                                           'DOCKER_', 'XDG_'))}
        self.env['HOME'] = self.home
        self.conf = os.path.join(self.tmp, 'ironic-images.conf')
        self.write_conf('')

    def write_conf(self, text):
        with open(self.conf, 'w') as f:
            f.write(text)

    def command(self, args):
        return [sys.executable, '-m', 'ironic_images.cmd.main'] + list(args)

    def run_cli(self, *args, env=None):
        return subprocess.run(self.command(args), capture_output=True,
                              text=True, timeout=120, cwd=self.work,
                              env=dict(self.env, **(env or {})))

    def run_tty(self, *args):
        """Run with standard error on a terminal: (result, what it drew)."""
        master, slave = os.openpty()
        drawn = []

        def _read():
            while True:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    return  # EIO: the terminal's other end is closed
                if not data:
                    return
                drawn.append(data)

        reader = threading.Thread(target=_read)
        reader.start()
        try:
            result = subprocess.run(self.command(args), stdout=subprocess.PIPE,
                                    stderr=slave, text=True, timeout=120,
                                    cwd=self.work, env=self.env)
        finally:
            os.close(slave)
            reader.join(30)
            os.close(master)
        return result, b''.join(drawn).decode()

    def assertSucceeded(self, result):
        self.assertEqual((0, ''), (result.returncode, result.stderr),
                         result.stdout)

    def assertOneLineError(self, result, code, *fragments):
        self.assertEqual(code, result.returncode, result.stderr)
        self.assertEqual('', result.stdout)
        self.assertNotIn('Traceback', result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(1, len(lines), result.stderr)
        self.assertTrue(lines[0].startswith('ironic-images: '), lines[0])
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
        return lines[0]

    def local_image(self, kind, name, compress=None):
        """An image in a directory of the person's, not allowed by config."""
        path = images.make_image(kind, self.work, size=SIZE)
        data = read(path)
        if compress:
            data = test_fetch.COMPRESSORS[compress](data)
        path = os.path.join(self.home, name)
        with open(path, 'wb') as f:
            f.write(data)
        return path


class TestOptionsAndOutput(CommandLineTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(nginx.NginxFixture(self.root))

    def test_options_after_the_command_and_version(self):
        url = self.server.url_for(self.image('qcow2'))
        result = self.run_cli('show', url, '--config-file', self.conf,
                              '--debug', '-f', 'json')
        self.assertEqual(0, result.returncode, result.stderr)
        self.assertIn('DEBUG', result.stderr)
        self.assertEqual(url, json.loads(result.stdout)['href'])
        result = self.run_cli('--version')
        self.assertEqual(0, result.returncode)
        self.assertRegex(result.stdout, r'^ironic-images \S+\n$')

    def test_show_for_a_person_and_as_json(self):
        name = self.image('qcow2')
        url = self.server.url_for(name)
        result = self.run_cli('show', url)
        self.assertSucceeded(result)
        self.assertEqual(['href', url], result.stdout.splitlines()[0].split())
        self.assertIn('etag=', result.stdout)
        result = self.run_cli('show', url, '-f', 'value', '-c', 'size')
        self.assertSucceeded(result)
        self.assertEqual(os.path.getsize(os.path.join(self.root, name)),
                         int(result.stdout))

    def test_fetch_says_what_it_wrote(self):
        name = self.image('qcow2', compress='xz')
        result = self.run_cli('fetch', '--raw', self.server.url_for(name),
                              self.dest())
        self.assertSucceeded(result)
        self.assertEqual('Wrote %s (raw from qcow2, 8.0 MiB virtual, '
                         'decompressed from xz)\n' % self.dest(),
                         result.stdout)
        self.assertSameDisk(self.raw_reference(), self.dest())
        result = self.run_cli('fetch', self.server.url_for(name),
                              self.dest('q'), '-f', 'json')
        fields = json.loads(result.stdout)
        self.assertEqual(('qcow2', 'xz', SIZE),
                         (fields['format'], fields['compression'],
                          fields['virtual_size']))

    def test_one_line_errors(self):
        with socket.socket() as probe:
            probe.bind(('127.0.0.1', 0))
            closed = probe.getsockname()[1]
        line = self.assertOneLineError(
            self.run_cli('show', 'http://127.0.0.1:%d/x.img' % closed), 2,
            'cannot connect to 127.0.0.1:%d: Connection refused' % closed)
        self.assertLess(len(line), 200)
        name = self.image('qcow2-backing-file')
        self.assertOneLineError(
            self.run_cli('fetch', self.server.url_for(name), self.dest()),
            1, 'backing_file')
        self.assertOneLineError(
            self.run_cli('download', self.server.url_for(name), self.dest(),
                         '--checksum', '0' * 64), 1, 'does not match')
        self.assertOneLineError(
            self.run_cli('fetch', self.server.url_for(name), self.dest(),
                         '--format', 'qcow2'), 2, '--disk-format')
        self.assertNothingLeft()


class TestWebServerCredentials(CommandLineTestCase):

    def test_creds_for_basic_auth(self):
        htpasswd = nginx.make_htpasswd(os.path.join(self.tmp, 'htpasswd'),
                                       'bob', 'pw-77')
        server = self.useFixture(nginx.NginxFixture(self.root,
                                                    htpasswd=htpasswd))
        name = self.image('qcow2')
        url = server.url_for(name)
        self.assertOneLineError(self.run_cli('fetch', url, self.dest()), 1,
                                'HTTP 401')
        result = self.run_cli('fetch', url, self.dest(), '--creds',
                              'bob:pw-77')
        self.assertSucceeded(result)
        self.assertEqual(read(os.path.join(self.root, name)),
                         read(self.dest()))
        self.assertNotIn('pw-77', result.stdout)
        # Refused without the header, served with it.
        seen = {(e['method'], e['status'], e['authorization'])
                for e in server.requests_log()}
        self.assertIn(('HEAD', 401, False), seen)
        self.assertIn(('GET', 200, True), seen)


class TestLocalFiles(CommandLineTestCase):
    """A path typed at a terminal: the person's file, the same pipeline."""

    def test_inspect_a_compressed_file_as_file_href_does(self):
        path = self.local_image('qcow2', 'disk.qcow2.zst', compress='zst')
        local = self.run_cli('inspect', path, '-f', 'json')
        self.assertSucceeded(local)
        self.write_conf('[file]\nallowed_paths = %s\n' % self.home)
        href = self.run_cli('inspect', 'file://' + path, '-f', 'json',
                            '--config-file', self.conf)
        self.assertSucceeded(href)
        local, href = json.loads(local.stdout), json.loads(href.stdout)
        self.assertEqual(('qcow2', 'zstd', SIZE),
                         (local['format'], local['compression'],
                          local['virtual_size']))
        del local['image'], href['image']
        self.assertEqual(href, local)

    def test_no_such_file(self):
        self.assertOneLineError(self.run_cli('inspect', 'nope.qcow2'), 2,
                                'nope.qcow2: no such file')

    def test_fetch_and_convert_local_files(self):
        path = self.local_image('qcow2', 'disk.qcow2.gz', compress='gz')
        result = self.run_cli('fetch', '--raw', path, self.dest())
        self.assertSucceeded(result)
        self.assertSameDisk(self.raw_reference(), self.dest())
        result = self.run_cli('convert', path, self.dest('disk.vmdk'), '-O',
                              'vmdk')
        self.assertSucceeded(result)
        self.assertEqual('Wrote %s (vmdk from qcow2, decompressed from '
                         'gzip)\n' % self.dest('disk.vmdk'), result.stdout)
        self.assertSameDisk(self.raw_reference(), self.dest('disk.vmdk'),
                            'vmdk')

    def test_allow_list_still_guards_file_hrefs(self):
        path = self.local_image('qcow2', 'disk.qcow2')
        self.assertOneLineError(
            self.run_cli('show', 'file://' + path), 2, 'allowed_paths')


class TestProgress(CommandLineTestCase):
    """At a terminal: every step shows its progress, on standard error."""

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(nginx.NginxFixture(self.root))
        # A VMDK is converted by qemu-img once downloaded.
        self.write_conf('[image_format]\npermitted_formats = raw,qcow2,vmdk\n')

    def test_download_then_conversion(self):
        name = self.image('vmdk-stream-optimized')
        result, drawn = self.run_tty('fetch', '--raw',
                                     self.server.url_for(name), self.dest(),
                                     '--config-file', self.conf)
        self.assertEqual(0, result.returncode, drawn)
        self.assertIn('downloading  ', drawn)
        self.assertIn('converting  ', drawn)
        self.assertRegex(drawn, r'\rconverting  [^\r]* 100%')
        self.assertNotIn('Traceback', drawn)
        self.assertTrue(result.stdout.startswith('Wrote'))

    def test_inspect_of_a_url_and_convert(self):
        name = self.image('qcow2')
        result, drawn = self.run_tty('inspect', self.server.url_for(name))
        self.assertEqual(0, result.returncode, drawn)
        self.assertIn('downloading  ', drawn)
        source = os.path.join(self.root, name)
        result, drawn = self.run_tty('convert', source, self.dest(), '-O',
                                     'raw')
        self.assertEqual(0, result.returncode, drawn)
        self.assertIn('converting  ', drawn)
        self.assertIn('100%', drawn)

    def test_nothing_drawn_when_not_a_terminal(self):
        name = self.image('vmdk-stream-optimized')
        self.assertSucceeded(self.run_cli(
            'fetch', '--raw', self.server.url_for(name), self.dest(),
            '--config-file', self.conf))


class TestRegistry(CommandLineTestCase):
    """Tags, indexes, credentials and TLS, with the distribution registry."""

    def push(self, server, repo='disk', tag='v1', data=None, **kwargs):
        data = data or read(images.make_image('qcow2', self.work, size=SIZE))
        return oci_push.push_artifact(server, repo, tag, data, 'disk.qcow2',
                                      **kwargs), data

    def test_tags_in_show_and_download(self):
        server = self.useFixture(registry.RegistryFixture())
        artifact, data = self.push(server)
        tag = server.oci_url('disk', 'v1')
        result = self.run_cli('show', tag, '--insecure')
        self.assertSucceeded(result)
        lines = result.stdout.splitlines()
        self.assertEqual(['resolved_from', tag], lines[0].split())
        self.assertEqual(['href', server.oci_url(
            'disk', artifact.manifest_digest)], lines[1].split())
        result = self.run_cli('download', tag, self.dest(), '--insecure')
        self.assertSucceeded(result)
        self.assertEqual(data, read(self.dest()))
        self.assertIn(' from %s' % server.oci_url(
            'disk', artifact.manifest_digest), result.stdout)

    def test_index_and_arch(self):
        server = self.useFixture(registry.RegistryFixture())
        data = read(images.make_image('qcow2', self.work, size=SIZE))
        pushed = oci_push.push_disk_image_fixture(
            server, 'multi', 'v1', {'amd64': {'qcow2': data},
                                    'arm64': {'qcow2': data + b'\0' * 512}})
        for arch in ('amd64', 'arm64'):
            result = self.run_cli('show', server.oci_url('multi', 'v1'),
                                  '--arch', arch, '--insecure', '-f',
                                  'json')
            self.assertSucceeded(result)
            self.assertEqual(
                server.oci_url('multi', pushed.artifacts[arch]['qcow2']
                               .manifest_digest),
                json.loads(result.stdout)['href'])

    def test_plain_http_registry_is_quiet(self):
        server = self.useFixture(registry.RegistryFixture())
        self.push(server)
        tag = server.oci_url('disk', 'v1')
        self.assertSucceeded(self.run_cli('fetch', tag, self.dest(),
                                          '--insecure'))
        result = self.run_cli('fetch', tag, self.dest(), '--insecure', '-v')
        self.assertEqual(0, result.returncode)
        lines = result.stderr.splitlines()
        self.assertEqual(1, len(lines), result.stderr)
        self.assertIn('plain HTTP', lines[0])
        self.assertLess(len(lines[0]), 300)
        # Without --insecure: refused, in one line.
        self.assertOneLineError(self.run_cli('fetch', tag, self.dest()), 1)

    def test_credentials(self):
        server = self.useFixture(registry.RegistryFixture(
            htpasswd=('alice', 's3cret')))
        _artifact, data = self.push(server)
        tag = server.oci_url('disk', 'v1')
        line = self.assertOneLineError(
            self.run_cli('download', tag, self.dest(), '--insecure'), 1)
        self.assertIn('401', line)
        self.assertSucceeded(self.run_cli('download', tag, self.dest(),
                                          '--insecure', '--creds',
                                          'alice:s3cret'))
        self.assertEqual(data, read(self.dest()))
        auth = {'auths': {server.host: {'auth': base64.b64encode(
            b'alice:s3cret').decode()}}}
        authfile = os.path.join(self.tmp, 'auth.json')
        with open(authfile, 'w') as f:
            json.dump(auth, f)
        self.assertSucceeded(self.run_cli('fetch', tag, self.dest('a'),
                                          '--insecure', '--authfile',
                                          authfile))
        os.makedirs(os.path.join(self.home, '.docker'))
        os.rename(authfile, os.path.join(self.home, '.docker',
                                         'config.json'))
        result = self.run_cli('show', tag, '--insecure', '-f', 'json')
        self.assertSucceeded(result)
        self.assertEqual(len(data), json.loads(result.stdout)['size'])
        self.assertNotIn('s3cret', result.stdout)

    def test_tls(self):
        ca = tls.make_test_ca(self.tmp)
        server = self.useFixture(registry.RegistryFixture(tls=ca))
        self.push(server)
        tag = server.oci_url('disk', 'v1')
        self.assertOneLineError(self.run_cli('show', tag), 1,
                                'CERTIFICATE_VERIFY_FAILED')
        self.assertSucceeded(self.run_cli('show', tag, '--ca-file',
                                          ca.ca_cert))
        self.assertSucceeded(self.run_cli('show', tag, '--insecure'))


class TestCache(CommandLineTestCase):

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(nginx.NginxFixture(self.root))
        self.cache = os.path.join(self.tmp, 'cache')
        self.write_conf('[image_cache]\nmaster_path = %s\n' % self.cache)

    def cli(self, *args):
        return self.run_cli(*(args + ('--config-file', self.conf)))

    def test_fetch_convert_from_the_master_list_clean(self):
        name = self.image('qcow2')
        url = self.server.url_for(name)
        result = self.cli('cache', 'fetch', url, self.dest('a'))
        self.assertSucceeded(result)
        self.assertEqual('Wrote %s (qcow2, downloaded into the cache)\n'
                         % self.dest('a'), result.stdout)
        result, drawn = self.run_tty('cache', 'fetch', '--raw', url,
                                     self.dest('b'), '--config-file',
                                     self.conf)
        self.assertEqual('Wrote %s (raw, converted from the cached '
                         'master)\n' % self.dest('b'), result.stdout)
        # One step, not labelled: the command cannot tell beforehand
        # whether the cache downloads or converts.
        self.assertIn('100%', drawn)
        self.assertNotIn('downloading', drawn)
        self.assertSameDisk(self.raw_reference(), self.dest('b'))
        gets = [entry for entry in self.server.requests_log()
                if entry['method'] == 'GET' and entry['status'] == 200]
        self.assertEqual(1, len(gets), gets)
        result = self.cli('cache', 'list', '-f', 'json')
        self.assertSucceeded(result)
        self.assertEqual(2, len(json.loads(result.stdout)))
        os.unlink(self.dest('b'))
        result = self.cli('cache', 'clean')
        self.assertSucceeded(result)
        self.assertIn('0 of 2 master(s) evicted; 1 in use', result.stdout)

    def test_local_images_leave_the_cache_alone(self):
        path = self.local_image('qcow2', 'disk.qcow2')
        result = self.cli('cache', 'fetch', path, self.dest())
        self.assertSucceeded(result)
        self.assertEqual('Wrote %s (qcow2, not cached: the image is a file '
                         'of this host already)\n' % self.dest(),
                         result.stdout)
        self.assertFalse(os.path.exists(self.cache))


class TestGlanceCloud(CommandLineTestCase):
    """OS_CLOUD and clouds.yaml, as the OpenStack client reads them.

    The Glance of the tests has no Keystone: the cloud says ``auth_type:
    none`` and ``image_endpoint_override``.
    """

    def setUp(self):
        super().setUp()
        self.glance = self.useFixture(glance.GlanceFixture(
            share_with=type(self)))
        config = os.path.join(self.home, '.config', 'openstack')
        os.makedirs(config)
        with open(os.path.join(config, 'clouds.yaml'), 'w') as f:
            f.write('clouds:\n'
                    '  lab:\n'
                    '    auth_type: none\n'
                    '    image_endpoint_override: %s\n' % self.glance.url)

    def test_show_and_fetch_through_the_cloud(self):
        data = read(images.make_image('qcow2', self.work, size=SIZE))
        image = self.glance.create_image(data, disk_format='qcow2')
        result = self.run_cli('show', image['id'], '-f', 'json',
                              env={'OS_CLOUD': 'lab'})
        self.assertSucceeded(result)
        fields = json.loads(result.stdout)
        self.assertEqual((len(data), 'qcow2'),
                         (fields['size'], fields['disk_format']))
        result = self.run_cli('fetch', image['id'], self.dest(),
                              '--os-cloud', 'lab')
        self.assertSucceeded(result)
        self.assertEqual(data, read(self.dest()))
        self.assertOneLineError(
            self.run_cli('show', image['id'], '--os-cloud', 'nope'), 2,
            "no cloud 'nope'")


class TestInspectAndConvert(CommandLineTestCase):
    """``inspect`` and ``convert`` on real images."""

    def setUp(self):
        super().setUp()
        self.server = self.useFixture(nginx.NginxFixture(self.root))

    def test_inspect_a_file_and_an_href(self):
        good = os.path.join(self.root, self.image('qcow2'))
        result = self.run_cli('inspect', '-f', 'json', good)
        self.assertSucceeded(result)
        report = json.loads(result.stdout)
        self.assertEqual('qcow2', report['format'])
        self.assertEqual(SIZE, report['virtual_size'])
        self.assertEqual('accepted', report['verdict'])
        self.assertEqual({'passed'}, {c['status'] for c in report['checks']})

        bad = self.image('qcow2-backing-file', compress='gz')
        result = self.run_cli('inspect', '-f', 'json', '--disk-format',
                              'qcow2', self.server.url_for(bad))
        self.assertEqual((1, ''), (result.returncode, result.stderr))
        report = json.loads(result.stdout)
        self.assertEqual('gzip', report['compression'])
        statuses = {c['name']: c['status'] for c in report['checks']}
        self.assertEqual({'single_format': 'passed', 'safety': 'failed',
                          'permitted_formats': 'not checked',
                          'format_match': 'not checked'}, statuses)
        self.assertIn('backing_file', report['verdict'])

        result = self.run_cli('inspect', good, '--disk-format', 'raw')
        self.assertEqual((1, ''), (result.returncode, result.stderr))
        self.assertIn('format_match', result.stdout)

    def test_convert(self):
        source = os.path.join(self.root, self.image('qcow2'))
        result = self.run_cli('convert', source, self.dest('out.vmdk'),
                              '-O', 'vmdk', '--subformat',
                              'streamOptimized')
        self.assertSucceeded(result)
        self.assertEqual('Wrote %s (vmdk from qcow2)\n'
                         % self.dest('out.vmdk'), result.stdout)
        self.assertSameDisk(self.raw_reference(), self.dest('out.vmdk'),
                            'vmdk')
        refused = os.path.join(self.root, self.image('qcow2-data-file'))
        self.assertOneLineError(
            self.run_cli('convert', refused, self.dest('x'), '-O', 'raw'),
            1, 'data_file')
        self.assertEqual(['out.vmdk'], os.listdir(self.dest_dir))

    def test_convert_a_gpt_disk(self):
        source = os.path.join(self.root, self.image('gpt'))
        result = self.run_cli('convert', source, self.dest('gpt.qcow2'),
                              '-O', 'qcow2')
        self.assertSucceeded(result)
        self.assertSameDisk(source, self.dest('gpt.qcow2'), 'qcow2')
