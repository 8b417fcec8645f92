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

"""The layout of the package: layers, no import circles, faces only.

Every import of the package's own modules counts, at module level or
inside a function: a lazy import that dodges a circle is still one.
"""

import ast
import os

from ironic_images.tests import base

PACKAGE = 'ironic_images'
# The directory that holds the package.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

#: The public modules of the design's API table: names handed on, and
#: nothing inside the package imports them.
FACES = ('ironic_images.api', 'ironic_images.checksum_utils',
         'ironic_images.image_cache', 'ironic_images.image_utils',
         'ironic_images.oci_registry')
#: The floors of the house, from the ground up: a module may import its
#: own floor and the floors below, never one above.
LAYERS = (
    ('ironic_images._i18n', 'ironic_images.conf', 'ironic_images.exception',
     'ironic_images.common'),
    ('ironic_images.transfer',),
    ('ironic_images.formats',),
    ('ironic_images.sink', 'ironic_images.qemu'),
    ('ironic_images.image_service',),
    ('ironic_images.fetch',),
    ('ironic_images.cache',),
    ('ironic_images.hosts',),
    FACES,
    ('ironic_images.cmd',),
)


def _modules():
    """Module name -> parsed source, tests left out."""
    found = {}
    for directory, dirs, files in os.walk(os.path.join(ROOT, PACKAGE)):
        dirs[:] = [d for d in dirs if d not in ('tests', '__pycache__')]
        for name in files:
            if not name.endswith('.py'):
                continue
            path = os.path.join(directory, name)
            parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
            if parts[-1] == '__init__':
                parts = parts[:-1]
            with open(path, encoding='utf-8') as f:
                found['.'.join(parts)] = ast.parse(f.read(), path)
    return found


def _imports(name, tree, known):
    """The package's modules that ``name`` imports, anywhere in it."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                candidate = node.module + '.' + alias.name
                out.add(candidate if candidate in known else node.module)
    return {m for m in out if m in known and m != name}


def _layer(module):
    for floor, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + '.'):
                return floor
    return None


def _circles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


class LayoutTestCase(base.TestCase):

    def setUp(self):
        super().setUp()
        self.trees = _modules()
        self.graph = {name: _imports(name, tree, self.trees)
                      for name, tree in self.trees.items()}

    def test_every_module_has_a_floor(self):
        # Not vacuous: the package's modules were found.
        self.assertIn('ironic_images.fetch.fetcher', self.trees)
        self.assertEqual([], sorted(
            m for m in self.trees if m != PACKAGE and _layer(m) is None))

    def test_no_import_circle(self):
        self.assertEqual([], _circles(self.graph))

    def test_no_import_from_a_floor_above(self):
        upward = sorted(
            '%s -> %s' % (module, imported)
            for module, imports in self.graph.items() if module != PACKAGE
            for imported in imports
            if _layer(imported) > _layer(module))
        self.assertEqual([], upward)

    def test_nothing_inside_imports_a_face(self):
        inside = sorted(
            '%s -> %s' % (module, imported)
            for module, imports in self.graph.items()
            if _layer(module) is not None
            and _layer(module) < _layer(FACES[0])
            for imported in imports if imported in FACES)
        self.assertEqual([], inside)

    def test_re_exports_only_at_faces_and_package_inits(self):
        # A module-level "name = module.attr" of one of our modules hands
        # a name on; only a face or a package's __init__ may do that.
        packages = {m for m in self.trees
                    if any(o.startswith(m + '.') for o in self.trees)}
        offenders = []
        for module, tree in self.trees.items():
            if module in FACES or module in packages:
                continue
            aliases = set()
            for node in tree.body:
                if isinstance(node, ast.ImportFrom) and (
                        node.module or '').startswith(PACKAGE):
                    aliases.update(a.asname or a.name for a in node.names)
            for node in tree.body:
                if (isinstance(node, ast.Assign)
                        and isinstance(node.value, ast.Attribute)
                        and isinstance(node.value.value, ast.Name)
                        and node.value.value.id in aliases
                        and node.value.value.id not in ('CONF', '_')):
                    offenders.append('%s:%d' % (module, node.lineno))
        self.assertEqual([], offenders)

    def test_every_public_name_of_the_design_imports(self):
        import importlib

        names = {
            'ironic_images.conf': ['CONF'],
            'ironic_images.exception': [
                'IronicImagesException', 'ImageRefValidationFailed',
                'ImageRefIsARedirect', 'ImageDownloadFailed',
                'ImageNotFound', 'ImageNotAuthorized',
                'ImageServiceAuthenticationRequired', 'ImageChecksumError',
                'ImageChecksumAlgorithmFailure',
                'ImageChecksumURLNotSupported', 'OciImageNotSpecific',
                'OciImageTagNotFound', 'TemporaryFailure',
                'ImageHostRateLimitFailure', 'ImageUnacceptable',
                'InvalidImage', 'ImageConvertFailed',
                'InsufficientDiskSpace', 'UnknownImageService'],
            'ironic_images.image_service': [
                'get_image_service', 'is_container_registry_url',
                'get_image_service_auth_override'],
            'ironic_images.image_service.base': ['BaseImageService'],
            'ironic_images.image_service.file': ['FileImageService'],
            'ironic_images.image_service.http': ['HttpImageService'],
            'ironic_images.image_service.oci': ['OciImageService'],
            'ironic_images.image_service.glance': ['GlanceImageService'],
            'ironic_images.oci_registry': ['OciClient'],
            'ironic_images.checksum_utils': [
                'parse_checksum', 'parse_checksum_file', 'resolve_checksum',
                'fetch_checksum_file', 'compute_file_checksum'],
            'ironic_images.image_utils': [
                'qemu_img_info', 'convert_image', 'fetch', 'fetch_to_raw',
                'check_available_space', 'TemporaryImages', 'check_image',
                'inspect_file', 'check_image_format'],
            'ironic_images.image_cache': ['ImageCache'],
            'ironic_images.api': ['API'],
        }
        for module, wanted in names.items():
            loaded = importlib.import_module(module)
            for name in wanted:
                self.assertTrue(hasattr(loaded, name),
                                '%s.%s' % (module, name))
