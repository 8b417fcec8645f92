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

"""Sphinx configuration of the ironic-images documentation."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '_exts'))

# -- General configuration ---------------------------------------------------

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.viewcode',
    'openstackdocstheme',
    'oslo_config.sphinxext',
    'oslo_config.sphinxconfiggen',
    'ironic_equivalents',
]

# oslo_config.sphinxconfiggen: write _static/ironic-images.conf.sample at
# build time from the same generator config as "tox -e genconfig".
config_generator_config_file = os.path.join(
    HERE, '..', '..', 'etc', 'ironic-images',
    'ironic-images-config-generator.conf')
sample_config_basename = '_static/ironic-images'

# openstackdocstheme
openstackdocs_repo_name = 'openstack/ironic-images'
openstackdocs_bug_project = 'ironic-images'
openstackdocs_bug_tag = ''
openstackdocs_use_storyboard = False
openstackdocs_auto_name = False
openstackdocs_pdf_link = False

project = 'ironic-images'
copyright = 'OpenStack Foundation and contributors'

templates_path = []
source_suffix = '.rst'
master_doc = 'index'
exclude_patterns = ['_build']
add_module_names = False
pygments_style = 'native'

autodoc_default_options = {
    'members': True,
    'show-inheritance': True,
}
autodoc_member_order = 'bysource'

# -- Options for HTML output -------------------------------------------------

html_theme = 'openstackdocs'
html_static_path = ['_static']
html_title = 'ironic-images'
htmlhelp_basename = 'ironic-imagesdoc'
