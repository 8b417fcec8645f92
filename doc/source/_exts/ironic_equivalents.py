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

"""Sphinx directive: a table of the options' equivalents in other projects.

The help text of an option that carries over from Ironic (or Cinder, Nova,
Glance) names its equivalent, as in "Ironic equivalent:
[conductor]file_url_allowed_paths." or "Ironic equivalents: [pxe]a and
[pxe]b.". ``.. ironic-equivalents::`` reads every option of the
``ironic-images`` namespace (the ``oslo.config.opts`` entry point) and
renders one row per equivalent, so the table follows the options as they
change::

    .. ironic-equivalents::
       :namespace: ironic-images
       :projects: Ironic, Cinder
"""

from importlib import metadata
import re

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

PROJECTS = ('Ironic', 'Cinder', 'Nova', 'Glance')
_EQUIVALENT = re.compile(
    r'\b(%s) equivalents?:\s*(.*?)(?:\.(?=\s|$)|$)' % '|'.join(PROJECTS))
_OPTION = re.compile(r'\[([\w-]+)\]([\w-]+)')


def _list_opts(namespace):
    for entry_point in metadata.entry_points(group='oslo.config.opts'):
        if entry_point.name == namespace:
            return entry_point.load()()
    raise LookupError('no oslo.config.opts entry point named %s' % namespace)


def equivalents(namespace='ironic-images', projects=PROJECTS):
    """Return (project, their option, group, option name) tuples.

    :param namespace: the oslo.config.opts entry point to read.
    :param projects: the projects whose equivalents to list.
    """
    rows = []
    for group, opts in _list_opts(namespace):
        group_name = getattr(group, 'name', group) or 'DEFAULT'
        for opt in opts:
            help_text = ' '.join(str(opt.help or '').split())
            for match in _EQUIVALENT.finditer(help_text):
                project = match.group(1)
                if project not in projects:
                    continue
                for their_group, their_name in _OPTION.findall(
                        match.group(2)):
                    rows.append((project,
                                 '[%s]%s' % (their_group, their_name),
                                 group_name, opt.name))
    return sorted(set(rows),
                  key=lambda row: (PROJECTS.index(row[0]), row[1], row[2]))


class IronicEquivalentsDirective(SphinxDirective):
    has_content = False
    option_spec = {
        'namespace': directives.unchanged,
        'projects': directives.unchanged,
    }

    def run(self):
        namespace = self.options.get('namespace', 'ironic-images')
        projects = tuple(
            p.strip() for p in self.options.get(
                'projects', ', '.join(PROJECTS)).split(',') if p.strip())
        rows = equivalents(namespace, projects)
        lines = ['.. list-table::',
                 '   :header-rows: 1',
                 '   :widths: 15 40 45',
                 '',
                 '   * - Project',
                 '     - Their option',
                 '     - ironic-images option']
        for project, theirs, group, name in rows:
            lines += ['   * - %s' % project,
                      '     - ``%s``' % theirs,
                      '     - :oslo.config:option:`%s.%s`' % (group, name)]
        if not rows:
            lines = ['No option names an equivalent yet.']
        source = self.get_source_info()[0]
        content = StringList(lines, source=source)
        container = nodes.container()
        nested_parse_with_titles(self.state, content, container)
        return container.children


def setup(app):
    app.add_directive('ironic-equivalents', IronicEquivalentsDirective)
    return {'parallel_read_safe': True, 'parallel_write_safe': True,
            'version': '1.0'}
