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

"""ironic-images inside a real Ironic 39 process (``tox -e ironic``).

Each test runs a conductor-like script in a fresh interpreter of the
``ironic`` tox environment, where ``ironic==39.0.0`` from PyPI is installed
beside ironic-images: Ironic's ``CONF`` parses one configuration file
that sets the test CA once, in ``[DEFAULT]webserver_verify_ca``; the
library then fetches from an https nginx through
:mod:`ironic_images.hosts.ironic`, and Ironic's own ``HttpImageService``
still downloads in the same process. The CA bundle variables of the
environment are removed, so only the configuration file can make TLS
work.

Outside that environment the tests skip; with ``CI`` set they fail.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import fixtures
from oslo_utils import units
import testtools

from ironic_images.tests.functional import images
from ironic_images.tests.functional.servers import nginx
from ironic_images.tests.functional.servers import tls

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
SIZE = 4 * units.Mi
CA_VARIABLES = ('REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'SSL_CERT_FILE',
                'SSL_CERT_DIR')

# The conductor's start: Ironic's configuration first, as ironic-conductor
# does (its CONF is oslo.config's global one). {imports} may import
# ironic-images modules before it.
_CONDUCTOR = """
import json
import sys

{imports}
from ironic.conf import CONF
CONF(['--config-file', sys.argv[1]], project='ironic')
"""

# What the library and Ironic then do in that process.
_WORK = """
import os

from ironic.common import image_service as ironic_image_service
from ironic.conf import default as ironic_default

from ironic_images.conf import CONF as LIBRARY_CONF
from ironic_images.conf import sharing
from ironic_images.hosts import ironic as images
from ironic_images.image_service.oci import client as oci_client

raw_url, qcow2_url, work = sys.argv[2:5]
result = {}
try:
    images.fetch(None, raw_url, os.path.join(work, 'fetched'))
    result['fetched'] = os.path.getsize(os.path.join(work, 'fetched'))
    cache = images.ImageCache(os.path.join(work, 'master'), 10 ** 10, 3600)
    result['cached_format'] = cache.fetch_image(
        qcow2_url, os.path.join(work, 'cached'))
except Exception as error:
    result['library_error'] = '%s: %s' % (type(error).__name__, error)
# Ironic's own HTTP image service, in the same process, same file.
try:
    with open(os.path.join(work, 'by-ironic'), 'wb') as image_file:
        ironic_image_service.HttpImageService().download(raw_url,
                                                         image_file)
    result['by_ironic'] = os.path.getsize(os.path.join(work, 'by-ironic'))
except Exception as error:
    result['ironic_error'] = '%s: %s' % (type(error).__name__, error)
host_opt = sharing.registered_opt(CONF, 'webserver_verify_ca')
result.update({
    'verify_ca': LIBRARY_CONF.webserver_verify_ca,
    'host_opt_is_ironic': any(host_opt is opt
                              for opt in ironic_default.webserver_opts),
    'oci_verify': oci_client.OciClient().verify,
    'glance_num_retries': LIBRARY_CONF.glance.num_retries,
    'chunk_size': LIBRARY_CONF.download.chunk_size,
    'tls_minimum_version': LIBRARY_CONF.webserver_tls_minimum_version,
    'ironic_reads_it_too': CONF.webserver_verify_ca,
})
print(json.dumps(result))
"""


def _ironic_installed():
    # Not imported here: importing ironic.conf would register Ironic's
    # options in this test process.
    return importlib.util.find_spec('ironic') is not None


class InIronicTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        if not _ironic_installed():
            message = ('ironic is not installed: run "tox -e ironic", '
                       'which installs ironic==39.0.0')
            if os.environ.get('CI'):
                self.fail('CI is set and ' + message)
            self.skipTest(message)
        self.useFixture(fixtures.Timeout(240, gentle=True))
        tmp = self.useFixture(fixtures.TempDir()).path
        self.root = os.path.join(tmp, 'root')
        self.work = os.path.join(tmp, 'work')
        ca_dir = os.path.join(tmp, 'ca')
        for directory in (self.root, self.work, ca_dir):
            os.mkdir(directory)
        self.ca = tls.make_test_ca(ca_dir)
        self.raw = images.make_image('raw', self.work, size=SIZE)
        os.rename(self.raw, os.path.join(self.root, 'disk.raw'))
        os.rename(images.make_image('qcow2', self.work, size=SIZE),
                  os.path.join(self.root, 'disk.qcow2'))
        # Ironic 39 requires TLS 1.3 by default, which nginx 1.22 does not
        # offer unless told.
        self.server = self.useFixture(nginx.NginxFixture(
            self.root, tls_cert=self.ca.cert, tls_key=self.ca.key,
            locations='ssl_protocols TLSv1.2 TLSv1.3;'))

    def config_file(self, text):
        path = os.path.join(self.work, 'ironic.conf')
        with open(path, 'w') as f:
            f.write(textwrap.dedent(text))
        return path

    def run_conductor(self, config, imports=''):
        """Run the conductor-like script; return what it printed."""
        work = os.path.join(self.work, 'run')
        os.mkdir(work)
        env = {key: value for key, value in os.environ.items()
               if key not in CA_VARIABLES}
        env['PYTHONPATH'] = ROOT
        script = _CONDUCTOR.format(imports=imports) + _WORK
        result = subprocess.run(
            [sys.executable, '-c', script, config,
             self.server.url_for('disk.raw'),
             self.server.url_for('disk.qcow2'), work],
            capture_output=True, text=True, env=env, timeout=180)
        self.assertEqual(0, result.returncode, result.stderr)
        return json.loads(result.stdout.splitlines()[-1])

    def ironic_config(self):
        return self.config_file("""
            [DEFAULT]
            webserver_verify_ca = %s

            [download]
            chunk_size = 1048576
            """ % self.ca.ca_cert)

    def assertWorks(self, result):
        self.assertNotIn('library_error', result)
        self.assertNotIn('ironic_error', result)
        self.assertEqual(SIZE, result['fetched'])
        self.assertEqual(SIZE, result['by_ironic'])
        # ImageCache's force_raw defaults to True, as Ironic's.
        self.assertEqual('raw', result['cached_format'])
        # One value, read by both; Ironic's definition of the option.
        self.assertEqual(self.ca.ca_cert, result['verify_ca'])
        self.assertEqual(self.ca.ca_cert, result['ironic_reads_it_too'])
        self.assertTrue(result['host_opt_is_ironic'])
        # [oci]verify_ca unset: registries use webserver_verify_ca too.
        self.assertEqual(self.ca.ca_cert, result['oci_verify'])
        # Ironic's default of its [glance]num_retries (0), and the
        # library's own option from the same file.
        self.assertEqual(0, result['glance_num_retries'])
        self.assertEqual(1048576, result['chunk_size'])
        # Ironic's default (1.3) for an option of the same name.
        self.assertEqual('1.3', result['tls_minimum_version'])

    def test_ironic_configuration_first(self):
        self.assertWorks(self.run_conductor(self.ironic_config()))

    def test_library_imported_before_ironic_configuration(self):
        imports = ('import ironic_images.conf\n'
                   'import ironic_images.hosts.ironic\n'
                   'import ironic_images.image_cache\n'
                   'import ironic_images.image_utils\n')
        self.assertWorks(self.run_conductor(self.ironic_config(), imports))

    def test_without_the_ca_both_refuse_the_server(self):
        # The control: the certificate is only trusted through the file.
        result = self.run_conductor(self.config_file('[DEFAULT]\n'))
        self.assertIn('certificate', result['library_error'].lower())
        self.assertIn('ironic_error', result)
        self.assertEqual('True', result['verify_ca'])
