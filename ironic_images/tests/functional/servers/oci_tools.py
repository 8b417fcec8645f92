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
"""Push disk images with the tools operators use: skopeo and oras-py.

The inputs skopeo copies from are built here by hand, as the container
tools would write them: an OCI image layout directory (a KubeVirt
containerDisk: one tar layer holding ``disk/<name>``; or an index of
several of them) and a ``docker save`` archive (an image built ``FROM
scratch`` with one ``COPY``). oras-py pushes files and directories
itself. Every push goes to a :class:`~.registry.RegistryServer` over
plain HTTP.

Example::

    layout = oci_layout(tmp, [container_disk_layer({'disk/d.qcow2': p})])
    skopeo_copy('oci:%s:v1' % layout, registry.host, 'kv/disk:v1')
    oras_push(registry, 'oras/dir:v1', [directory])
"""

import hashlib
import io
import json
import os
import subprocess
import tarfile

import testtools

from ironic_images.tests.functional.servers import base

OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar'
OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip'
DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'
TITLE = 'org.opencontainers.image.title'


def digest_of(data):
    """``sha256:HEX`` of bytes."""
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def tar_layer(files, directories=()):
    """An uncompressed tar layer, as a container build writes it.

    :param files: ``{path in the layer: local file path or bytes}``.
    :param directories: directory entries to write first.
    :returns: the tar bytes.
    """
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for name in directories:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1
            tar.addfile(info)
        for name, source in files.items():
            if isinstance(source, bytes):
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(source), 1
                tar.addfile(info, io.BytesIO(source))
            else:
                info = tar.gettarinfo(source, arcname=name)
                info.uid = info.gid = 107
                with open(source, 'rb') as f:
                    tar.addfile(info, f)
    return out.getvalue()


def container_disk_layer(disk_path, name='disk.qcow2'):
    """A KubeVirt containerDisk layer: ``disk/NAME`` owned by 107."""
    return tar_layer({'disk/' + name: disk_path}, directories=['disk/'])


def image_config(layer, architecture='amd64'):
    """The config of a one-layer image (``rootfs.diff_ids``)."""
    return json.dumps({
        'architecture': architecture, 'os': 'linux', 'config': {},
        'rootfs': {'type': 'layers', 'diff_ids': [digest_of(layer)]},
    }, sort_keys=True).encode()


def _write_blob(layout, data):
    digest = digest_of(data)
    path = os.path.join(layout, 'blobs', 'sha256', digest.split(':')[1])
    with open(path, 'wb') as f:
        f.write(data)
    return {'digest': digest, 'size': len(data)}


def oci_layout(directory, layers, tag='v1', architectures=('amd64',),
               layer_annotations=None):
    """Write an OCI image layout of one-layer images.

    :param directory: the layout directory (created).
    :param layers: one uncompressed tar layer per architecture.
    :param tag: the ``org.opencontainers.image.ref.name`` of the entry.
    :param architectures: the architecture of each layer; with more than
        one, the layout's entry is an index of the images.
    :param layer_annotations: annotations of every layer, or None.
    :returns: ``directory``.
    """
    os.makedirs(os.path.join(directory, 'blobs', 'sha256'))
    with open(os.path.join(directory, 'oci-layout'), 'w') as f:
        json.dump({'imageLayoutVersion': '1.0.0'}, f)
    manifests = []
    for layer, arch in zip(layers, architectures):
        layer_desc = dict(_write_blob(directory, layer),
                          mediaType=OCI_LAYER_TAR)
        if layer_annotations:
            layer_desc['annotations'] = dict(layer_annotations)
        config = dict(_write_blob(directory, image_config(layer, arch)),
                      mediaType=OCI_CONFIG)
        manifest = json.dumps({'schemaVersion': 2,
                               'mediaType': OCI_MANIFEST,
                               'config': config,
                               'layers': [layer_desc]}).encode()
        manifests.append(dict(_write_blob(directory, manifest),
                              mediaType=OCI_MANIFEST,
                              platform={'architecture': arch,
                                        'os': 'linux'}))
    if len(manifests) == 1:
        entry = manifests[0]
    else:
        index = json.dumps({'schemaVersion': 2, 'mediaType': OCI_INDEX,
                            'manifests': manifests}).encode()
        entry = dict(_write_blob(directory, index), mediaType=OCI_INDEX)
    entry['annotations'] = {'org.opencontainers.image.ref.name': tag}
    with open(os.path.join(directory, 'index.json'), 'w') as f:
        json.dump({'schemaVersion': 2, 'manifests': [entry]}, f)
    return directory


def docker_archive(path, layer, repo_tag='disk:latest'):
    """Write a ``docker save`` archive of a one-layer image.

    :param path: the archive to write.
    :param layer: the uncompressed tar layer.
    :returns: ``path``.
    """
    config = image_config(layer)
    config_name = digest_of(config).split(':')[1] + '.json'
    members = {
        config_name: config,
        'layer/layer.tar': layer,
        'manifest.json': json.dumps([{
            'Config': config_name, 'RepoTags': [repo_tag],
            'Layers': ['layer/layer.tar']}]).encode(),
    }
    with open(path, 'wb') as f:
        f.write(tar_layer(members, directories=['layer/']))
    return path


def skopeo_copy(source, registry_host, destination, *options):
    """``skopeo copy SOURCE docker://HOST/DESTINATION``, plain HTTP.

    :param source: ``oci:DIR:TAG``, ``docker-archive:FILE`` or
        ``docker://HOST/REPO:TAG``.
    :param options: more options (``--format v2s2``, ``--all``...).
    :returns: skopeo's output.
    :raises subprocess.CalledProcessError: when skopeo fails.
    """
    skopeo = base.require_binary('skopeo')
    command = [skopeo, '--insecure-policy', 'copy', '--quiet',
               '--dest-tls-verify=false', '--src-tls-verify=false']
    if not source.startswith('docker://'):
        command.remove('--src-tls-verify=false')
    target = 'docker://%s/%s' % (registry_host, destination)
    command += list(options) + [source, target]
    return subprocess.run(command, check=True, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL,
                          timeout=120).stdout


def oras_client(registry):
    """An oras-py client of a registry (plain HTTP).

    :raises: the test's skip (or, with CI set, RuntimeError) when oras-py
        is not installed.
    """
    try:
        from oras import client
    except ImportError:
        message = ('oras-py is not installed (pip install -r '
                   'test-requirements.txt)')
        if os.environ.get('CI'):
            raise RuntimeError('CI is set and ' + message)
        raise testtools.TestCase.skipException(message)
    return client.OrasClient(hostname=registry.host, insecure=True)


def oras_push(registry, target, files, **kwargs):
    """``oras push`` of files or directories to ``HOST/target``.

    :param files: paths, each optionally ``PATH:MEDIA_TYPE``.
    :param kwargs: more arguments of oras-py's ``push``
        (``manifest_annotations``...).
    """
    client = oras_client(registry)
    return client.push(target='%s/%s' % (registry.host, target),
                       files=list(files), disable_path_validation=True,
                       **kwargs)
