# Sphinx configuration of qga-monitor's release notes (``tox -e
# releasenotes``: ``sphinx-build -W -b html releasenotes/source
# releasenotes/build/html``), built by reno from releasenotes/notes/.

extensions = [
    'openstackdocstheme',
    'reno.sphinxext',
]

openstackdocs_repo_name = 'x/qga-monitor'
openstackdocs_bug_project = 'qga-monitor'
openstackdocs_bug_tag = 'releasenotes'
openstackdocs_auto_name = False

project = 'qga-monitor Release Notes'
copyright = 'qga-monitor developers'

master_doc = 'index'
source_suffix = '.rst'
exclude_patterns = []
pygments_style = 'native'

html_theme = 'openstackdocs'
html_static_path = []
