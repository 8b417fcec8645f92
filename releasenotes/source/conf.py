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

"""Sphinx configuration of the ironic-images release notes."""

extensions = [
    'openstackdocstheme',
    'reno.sphinxext',
]

# openstackdocstheme
openstackdocs_repo_name = 'openstack/ironic-images'
openstackdocs_bug_project = 'ironic-images'
openstackdocs_bug_tag = ''
openstackdocs_use_storyboard = False
openstackdocs_auto_name = False
openstackdocs_pdf_link = False

project = 'ironic-images Release Notes'
copyright = 'OpenStack Foundation and contributors'

# Release notes are not versioned like the code.
version = ''
release = ''

templates_path = ['_templates']
source_suffix = '.rst'
master_doc = 'index'
exclude_patterns = []
pygments_style = 'native'

html_theme = 'openstackdocs'
html_static_path = ['_static']
htmlhelp_basename = 'IronicImagesReleaseNotesdoc'

# Internationalization
locale_dirs = ['locale/']
