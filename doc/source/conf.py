# Sphinx configuration of qga-monitor's documentation (``tox -e docs``:
# ``sphinx-build -W -b html doc/source doc/build/html``).

extensions = [
    'openstackdocstheme',
    'oslo_config.sphinxext',
]

# openstackdocstheme
openstackdocs_repo_name = 'x/qga-monitor'
openstackdocs_bug_project = 'qga-monitor'
openstackdocs_bug_tag = 'doc'
openstackdocs_auto_name = False

project = 'qga-monitor'
copyright = 'qga-monitor developers'

master_doc = 'index'
source_suffix = '.rst'
exclude_patterns = []
pygments_style = 'native'

html_theme = 'openstackdocs'
html_static_path = []
