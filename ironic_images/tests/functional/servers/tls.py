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
"""A throw-away certificate authority for TLS tests, made with openssl."""

import collections
import os
import random
import subprocess

from ironic_images.tests.functional.servers import base

#: Paths of the PEM files written by :func:`make_test_ca`.
CAFiles = collections.namedtuple('CAFiles', 'ca_cert ca_key cert key')

_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = ironic-images test CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = %(san)s
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def _openssl(*args):
    subprocess.run((base.require_binary('openssl'),) + args, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, timeout=60)


def make_test_ca(workdir, dns_names=('localhost',), ips=('127.0.0.1',),
                 days=3):
    """Create a CA and a server certificate signed by it.

    Keys are ECDSA P-256, unencrypted.  The server certificate has
    ``CN=localhost`` and a subjectAltName with ``dns_names`` and ``ips``.

    :param workdir: an existing directory for the files.
    :param dns_names: DNS names of the server certificate.
    :param ips: IP addresses of the server certificate.
    :param days: validity of both certificates.
    :returns: a :data:`CAFiles` of paths: ``ca_cert`` (pass it as
        ``verify=``), ``ca_key``, ``cert`` and ``key`` (for the server).
    """
    path = os.path.join
    files = CAFiles(path(workdir, 'ca.crt'), path(workdir, 'ca.key'),
                    path(workdir, 'server.crt'), path(workdir, 'server.key'))
    config = path(workdir, 'openssl.cnf')
    csr = path(workdir, 'server.csr')
    san = ', '.join(['DNS:%s' % n for n in dns_names]
                    + ['IP:%s' % i for i in ips])
    with open(config, 'w') as f:
        f.write(_CONFIG % {'san': san})
    newkey = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
              '-nodes', '-config', config)
    _openssl('req', '-x509', *newkey, '-extensions', 'v3_ca',
             '-days', str(days), '-keyout', files.ca_key,
             '-out', files.ca_cert)
    _openssl('req', '-new', *newkey, '-subj', '/CN=localhost',
             '-keyout', files.key, '-out', csr)
    _openssl('x509', '-req', '-in', csr, '-CA', files.ca_cert,
             '-CAkey', files.ca_key,
             '-set_serial', str(random.getrandbits(63) + 1),
             '-days', str(days), '-extfile', config,
             '-extensions', 'v3_server', '-out', files.cert)
    os.unlink(csr)
    return files
