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
"""Push OCI fixtures to a registry with plain ``requests``.

Digest-stable: blobs and manifests are pushed as the exact bytes whose
digests are returned (unlike ``skopeo copy``, which rewrites an index).

Low level (``auth`` is None, a ``(user, password)`` tuple or any requests
auth, e.g. :class:`RegistryAuth` or ``RegistryServer.push_auth``; pass
``verify`` explicitly: the environment's CA bundle would win otherwise)::

    digest = push_blob(url, 'os/disk', data, auth=..., verify=...)
    config = push_empty_config(url, 'os/disk', auth=..., verify=...)
    manifest = artifact_manifest(digest, len(data), 'disk.qcow2')
    mdigest = push_manifest(url, 'os/disk', 'v1', manifest, MANIFEST)
    idx = index([(mdigest, manifest_size(manifest), 'amd64', 'linux',
                  {'disktype': 'qcow2'})])
    push_manifest(url, 'os/disk', 'latest', idx, INDEX)

High level, with a :class:`~.registry.RegistryServer` (or its fixture),
whose ``url``, ``push_auth`` and ``verify`` are used::

    pushed = push_disk_image_fixture(registry, 'os/disk', ['v1', 'latest'],
        files={'amd64': {'qcow2': q, 'raw': r, 'raw.zst': z},
               'arm64': {'qcow2': q2}})
    pushed.index_digest, pushed.artifacts['amd64']['raw'].blob_digest
    single = push_artifact(registry, 'os/oras', 'v1', data, 'disk.qcow2')
"""

import dataclasses
import hashlib
import json
import os
import re
import threading
import urllib.parse

import requests
import requests.auth

#: Media types.
MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
INDEX = 'application/vnd.oci.image.index.v1+json'
DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
DOCKER_MANIFEST_LIST = (
    'application/vnd.docker.distribution.manifest.list.v2+json')
EMPTY = 'application/vnd.oci.empty.v1+json'
LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar'
ZSTD = 'application/zstd'
GZIP = 'application/gzip'
#: What ``oras push`` sets when no artifact type is given.
UNKNOWN_ARTIFACT = 'application/vnd.unknown.artifact.v1'
#: The artifact type of the disk images made here.
DISK_ARTIFACT = 'application/vnd.ironic-images.disk-image.v1'
#: Every manifest media type, for an ``Accept`` header.
ACCEPT_ALL = ', '.join([INDEX, MANIFEST, DOCKER_MANIFEST_LIST,
                        DOCKER_MANIFEST])
TITLE = 'org.opencontainers.image.title'

#: The empty config blob and its descriptor.
EMPTY_BLOB = b'{}'
EMPTY_DIGEST = 'sha256:' + hashlib.sha256(EMPTY_BLOB).hexdigest()

#: For each file kind of push_disk_image_fixture: (layer media type,
#: disktype annotation).
FILE_KINDS = {
    'qcow2': (LAYER_TAR, 'qcow2'),
    'raw': (LAYER_TAR, 'raw'),
    'raw.zst': (ZSTD, 'raw'),
    'raw.gz': (GZIP, 'raw'),
    'qcow2.zst': (ZSTD, 'qcow2'),
    'qcow2.gz': (GZIP, 'qcow2'),
}

_TIMEOUT = 60
_CHUNK = 1024 * 1024


class PushError(Exception):
    """A registry refused a push; ``status`` and ``body`` tell why."""

    def __init__(self, what, resp):
        self.status = resp.status_code
        self.body = resp.text[:2000]
        super(PushError, self).__init__('%s: %s %s: %s' % (
            what, resp.status_code, resp.reason, self.body))


def sha256_digest(data):
    """Return ``sha256:HEX`` of bytes."""
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def parse_www_authenticate(value):
    """Parse a challenge: ``('bearer', {'realm': ..., 'service': ...})``.

    The scheme is lower-cased; ``('', {})`` for an empty header.
    """
    value = (value or '').strip()
    scheme, _, rest = value.partition(' ')
    params = dict(re.findall(r'([A-Za-z_]+)="([^"]*)"', rest))
    return scheme.lower(), params


class RegistryAuth(requests.auth.AuthBase):
    """A requests auth answering a registry's 401 challenges.

    On ``Basic``, it resends with the credentials; on ``Bearer``, it gets
    a token for the challenge's ``scope`` (from ``token_factory``, or from
    the realm with the credentials, if any) and resends.  The last
    credential that worked is sent first on the next requests.

    :param username: user name, for Basic or for the token realm.
    :param password: its password.
    :param token_factory: ``f(service, scopes) -> token``, used instead
        of asking the realm.
    :param verify: ``verify`` for the realm's requests.
    """

    def __init__(self, username=None, password=None, token_factory=None,
                 verify=True):
        self.username = username
        self.password = password
        self.token_factory = token_factory
        self.verify = verify
        self._lock = threading.Lock()
        self._header = None

    def _basic(self):
        return requests.auth._basic_auth_str(self.username, self.password)

    def _token(self, params):
        service = params.get('service')
        scopes = params['scope'].split(' ') if params.get('scope') else []
        if self.token_factory is not None:
            return self.token_factory(service, scopes)
        query = {'scope': scopes} if scopes else {}
        if service:
            query['service'] = service
        auth = ((self.username, self.password) if self.username is not None
                else None)
        resp = requests.get(params['realm'], params=query, auth=auth,
                            verify=self.verify, timeout=_TIMEOUT)
        if resp.status_code != 200:
            raise PushError('token request', resp)
        body = resp.json()
        return body.get('token') or body['access_token']

    def __call__(self, req):
        with self._lock:
            header = self._header
        if header:
            req.headers['Authorization'] = header
        try:
            req._oci_body_pos = req.body.tell()
        except AttributeError:
            req._oci_body_pos = None
        req.register_hook('response', self._handle_401)
        return req

    def _handle_401(self, resp, **kwargs):
        if (resp.status_code != 401
                or getattr(resp.request, '_oci_retried', False)):
            return resp
        scheme, params = parse_www_authenticate(
            resp.headers.get('WWW-Authenticate'))
        if scheme == 'basic' and self.username is not None:
            header = self._basic()
        elif scheme == 'bearer' and params.get('realm'):
            header = 'Bearer ' + self._token(params)
        else:
            return resp
        with self._lock:
            self._header = header
        resp.content  # noqa: B018 - read the body to reuse the connection
        resp.close()
        prep = resp.request.copy()
        pos = getattr(resp.request, '_oci_body_pos', None)
        if pos is not None:
            prep.body.seek(pos)
        prep.headers['Authorization'] = header
        prep._oci_retried = True
        new = resp.connection.send(prep, **kwargs)
        new.history.append(resp)
        new.request = prep
        return new


def _upload_location(resp):
    location = urllib.parse.urljoin(resp.url, resp.headers['Location'])
    return location


def _with_digest(location, digest):
    sep = '&' if urllib.parse.urlsplit(location).query else '?'
    return location + sep + urllib.parse.urlencode({'digest': digest})


def push_blob(registry_url, repo, data, auth=None, verify=True):
    """Upload a blob (monolithic: POST, then PUT with the body).

    :param registry_url: e.g. ``http://127.0.0.1:PORT``.
    :param repo: the repository name, e.g. ``os/disk``.
    :param data: the bytes.
    :returns: its digest, ``sha256:HEX``.
    :raises PushError: if the registry refuses.
    """
    digest = sha256_digest(data)
    _put_blob(registry_url, repo, digest, data, len(data), auth, verify)
    return digest


def push_blob_file(registry_url, repo, path, auth=None, verify=True):
    """Upload a file as a blob, streamed (for big blobs).

    :returns: ``(digest, size)``.
    """
    hasher = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            hasher.update(chunk)
    digest = 'sha256:' + hasher.hexdigest()
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        _put_blob(registry_url, repo, digest, f, size, auth, verify)
    return digest, size


def _put_blob(registry_url, repo, digest, body, size, auth, verify):
    resp = requests.post('%s/v2/%s/blobs/uploads/' % (registry_url, repo),
                         auth=auth, verify=verify, timeout=_TIMEOUT)
    if resp.status_code != 202:
        raise PushError('upload of %s to %s' % (digest, repo), resp)
    location = _with_digest(_upload_location(resp), digest)
    resp = requests.put(location, data=body, auth=auth, verify=verify,
                        timeout=_TIMEOUT,
                        headers={'Content-Type': 'application/octet-stream',
                                 'Content-Length': str(size)})
    if resp.status_code != 201:
        raise PushError('upload of %s to %s' % (digest, repo), resp)
    got = resp.headers.get('Docker-Content-Digest')
    if got and got != digest:
        raise AssertionError('registry stored %s as %s' % (digest, got))


def push_empty_config(registry_url, repo, auth=None, verify=True):
    """Push the 2-byte ``{}`` blob (config of artifact manifests).

    :returns: :data:`EMPTY_DIGEST`.
    """
    return push_blob(registry_url, repo, EMPTY_BLOB, auth=auth,
                     verify=verify)


def delete_blob(registry_url, repo, digest, auth=None, verify=True):
    """Delete a blob from a repository (the registry has deletes on)."""
    resp = requests.delete('%s/v2/%s/blobs/%s' % (registry_url, repo, digest),
                           auth=auth, verify=verify, timeout=_TIMEOUT)
    if resp.status_code != 202:
        raise PushError('delete of %s in %s' % (digest, repo), resp)


def delete_manifest(registry_url, repo, digest, auth=None, verify=True):
    """Delete a manifest (and so its tags) by digest."""
    resp = requests.delete(
        '%s/v2/%s/manifests/%s' % (registry_url, repo, digest),
        auth=auth, verify=verify, timeout=_TIMEOUT)
    if resp.status_code != 202:
        raise PushError('delete of %s in %s' % (digest, repo), resp)


def encode_manifest(manifest):
    """The bytes pushed for a manifest: bytes as is, a dict as JSON."""
    if isinstance(manifest, (bytes, bytearray)):
        return bytes(manifest)
    return json.dumps(manifest, indent=2).encode()


def manifest_size(manifest):
    """The size of what :func:`push_manifest` sends for ``manifest``."""
    return len(encode_manifest(manifest))


def manifest_digest(manifest):
    """The digest of what :func:`push_manifest` sends for ``manifest``."""
    return sha256_digest(encode_manifest(manifest))


def push_manifest(registry_url, repo, ref, manifest, media_type=None,
                  auth=None, verify=True):
    """PUT a manifest or an index under a tag or its digest.

    :param ref: a tag, or None to push by digest only.
    :param manifest: a dict (sent as :func:`encode_manifest` makes it) or
        the exact bytes.
    :param media_type: the ``Content-Type``; by default the manifest's
        ``mediaType``.
    :returns: the digest of the bytes sent.
    :raises PushError: if the registry refuses.
    """
    data = encode_manifest(manifest)
    digest = sha256_digest(data)
    if media_type is None:
        media_type = json.loads(data)['mediaType']
    resp = requests.put(
        '%s/v2/%s/manifests/%s' % (registry_url, repo, ref or digest),
        data=data, headers={'Content-Type': media_type}, auth=auth,
        verify=verify, timeout=_TIMEOUT)
    if resp.status_code != 201:
        raise PushError('manifest %s:%s' % (repo, ref or digest), resp)
    got = resp.headers.get('Docker-Content-Digest')
    if got and got != digest:
        raise AssertionError('registry stored %s as %s' % (digest, got))
    return digest


def artifact_manifest(blob_digest, size, filename, media_type=LAYER_TAR,
                      artifact_type=UNKNOWN_ARTIFACT, disktype=None,
                      annotations=None, layer_annotations=None):
    """Build an OCI artifact manifest with one layer (as ``oras push``).

    The config is the empty ``{}`` blob: push it too
    (:func:`push_empty_config`).

    :param filename: the layer's ``org.opencontainers.image.title``, or
        None for no title.
    :param media_type: the layer's media type.
    :param artifact_type: ``artifactType``, or None to leave it out.
    :param disktype: if set, a ``disktype`` manifest annotation.
    :param annotations: more manifest annotations.
    :param layer_annotations: more layer annotations.
    :returns: a dict.
    """
    layer = {'mediaType': media_type, 'digest': blob_digest, 'size': size}
    layer_ann = dict(layer_annotations or {})
    if filename is not None:
        layer_ann[TITLE] = filename
    if layer_ann:
        layer['annotations'] = layer_ann
    manifest = {'schemaVersion': 2, 'mediaType': MANIFEST}
    if artifact_type:
        manifest['artifactType'] = artifact_type
    manifest['config'] = {'mediaType': EMPTY, 'digest': EMPTY_DIGEST,
                          'size': len(EMPTY_BLOB)}
    manifest['layers'] = [layer]
    ann = dict(annotations or {})
    if disktype:
        ann['disktype'] = disktype
    if ann:
        manifest['annotations'] = ann
    return manifest


def index(manifests, media_type=INDEX, annotations=None):
    """Build an index (or a Docker manifest list).

    :param manifests: a list of ``(digest, size, arch, os, annotations)``;
        ``arch`` None leaves out ``platform``, ``annotations`` may be None;
        an optional 6th element is the entry's media type (default
        :data:`MANIFEST`).
    :param media_type: :data:`INDEX` or :data:`DOCKER_MANIFEST_LIST`.
    :param annotations: index annotations.
    :returns: a dict.
    """
    entries = []
    for entry in manifests:
        digest, size, arch, os_name, entry_ann = entry[:5]
        entry_type = entry[5] if len(entry) > 5 else MANIFEST
        item = {'mediaType': entry_type, 'digest': digest, 'size': size}
        if arch:
            item['platform'] = {'architecture': arch,
                                'os': os_name or 'linux'}
        if entry_ann:
            item['annotations'] = dict(entry_ann)
        entries.append(item)
    result = {'schemaVersion': 2, 'mediaType': media_type,
              'manifests': entries}
    if annotations:
        result['annotations'] = dict(annotations)
    return result


@dataclasses.dataclass
class Artifact(object):
    """One artifact pushed: its manifest and its single blob."""

    manifest_digest: str
    manifest_size: int
    manifest: dict
    blob_digest: str
    blob_size: int
    filename: str
    media_type: str
    disktype: str
    arch: str = None


@dataclasses.dataclass
class DiskImageFixture(object):
    """What :func:`push_disk_image_fixture` pushed.

    ``artifacts[arch][kind]`` is an :class:`Artifact`; ``index`` is the
    dict, ``index_bytes`` the exact bytes pushed.
    """

    repo: str
    tags: list
    index_digest: str
    index_size: int
    index: dict
    index_bytes: bytes
    artifacts: dict

    @property
    def manifest_digests(self):
        """Every manifest digest, in index order."""
        return [m['digest'] for m in self.index['manifests']]

    @property
    def blob_digests(self):
        """Every blob digest, in index order."""
        by_manifest = {a.manifest_digest: a.blob_digest
                       for kinds in self.artifacts.values()
                       for a in kinds.values()}
        return [by_manifest[d] for d in self.manifest_digests]


def _target(registry, auth, verify):
    """(url, auth, verify) for a RegistryServer, fixture or URL."""
    if isinstance(registry, str):
        return registry.rstrip('/'), auth, True if verify is None else verify
    if auth is None:
        auth = registry.push_auth
    if verify is None:
        verify = registry.verify
    return registry.url, auth, verify


def _tags(tag):
    if tag is None:
        return []
    if isinstance(tag, str):
        return [tag]
    return list(tag)


def push_artifact(registry, repo, tag, data, filename, media_type=LAYER_TAR,
                  artifact_type=UNKNOWN_ARTIFACT, disktype=None,
                  annotations=None, auth=None, verify=None):
    """Push an ORAS-style single-manifest artifact (no index) and tag it.

    :param registry: a RegistryServer (or fixture), or a base URL (then
        pass ``auth`` and ``verify``).
    :param tag: a tag, a list of tags, or None (by digest only).
    :returns: an :class:`Artifact`.
    """
    url, auth, verify = _target(registry, auth, verify)
    push_empty_config(url, repo, auth=auth, verify=verify)
    blob = push_blob(url, repo, data, auth=auth, verify=verify)
    manifest = artifact_manifest(blob, len(data), filename,
                                 media_type=media_type,
                                 artifact_type=artifact_type,
                                 disktype=disktype, annotations=annotations)
    digest = None
    for ref in _tags(tag) or [None]:
        digest = push_manifest(url, repo, ref, manifest, MANIFEST,
                               auth=auth, verify=verify)
    return Artifact(digest, manifest_size(manifest), manifest, blob,
                    len(data), filename, media_type, disktype)


def push_disk_image_fixture(registry, repo, tag, files,
                            artifact_type=DISK_ARTIFACT, platform_os='linux',
                            filename='disk', media_types=None,
                            auth=None, verify=None):
    """Push a multi-arch index of disk image artifacts and tag it.

    Each file becomes a blob with its own artifact manifest (layer title
    ``FILENAME-ARCH.KIND``, e.g. ``disk-amd64.raw.zst``); the index lists
    them with ``platform: {architecture: ARCH, os: linux}`` and
    ``annotations: {disktype: ...}``, in the order of ``files``.

    :param registry: a RegistryServer (or fixture), or a base URL (then
        pass ``auth`` and ``verify``).
    :param tag: a tag, or a list of tags, all on the index.
    :param files: ``{arch: {kind: bytes}}``; kinds are those of
        :data:`FILE_KINDS` (``qcow2``, ``raw``, ``raw.zst``...), which
        give the layer media type and the disktype.
    :param artifact_type: ``artifactType`` of the manifests.
    :param filename: the stem of the layer titles.
    :param media_types: ``{kind: media type}`` overriding FILE_KINDS.
    :returns: a :class:`DiskImageFixture`.
    """
    url, auth, verify = _target(registry, auth, verify)
    push_empty_config(url, repo, auth=auth, verify=verify)
    artifacts = {}
    entries = []
    for arch, kinds in files.items():
        artifacts[arch] = {}
        for kind, data in kinds.items():
            media_type, disktype = FILE_KINDS[kind]
            media_type = (media_types or {}).get(kind, media_type)
            name = '%s-%s.%s' % (filename, arch, kind)
            blob = push_blob(url, repo, data, auth=auth, verify=verify)
            manifest = artifact_manifest(blob, len(data), name,
                                         media_type=media_type,
                                         artifact_type=artifact_type)
            digest = push_manifest(url, repo, None, manifest, MANIFEST,
                                   auth=auth, verify=verify)
            size = manifest_size(manifest)
            artifacts[arch][kind] = Artifact(
                digest, size, manifest, blob, len(data), name, media_type,
                disktype, arch)
            entries.append((digest, size, arch, platform_os,
                            {'disktype': disktype}))
    idx = index(entries)
    tags = _tags(tag)
    digest = None
    for ref in tags or [None]:
        digest = push_manifest(url, repo, ref, idx, INDEX, auth=auth,
                               verify=verify)
    data = encode_manifest(idx)
    return DiskImageFixture(repo, tags, digest, len(data), idx, data,
                            artifacts)


def get_manifest(registry_url, repo, ref, accept=ACCEPT_ALL, auth=None,
                 verify=True):
    """GET a manifest or index; returns the requests response."""
    return requests.get(
        '%s/v2/%s/manifests/%s' % (registry_url, repo, ref),
        headers={'Accept': accept}, auth=auth, verify=verify,
        timeout=_TIMEOUT)
