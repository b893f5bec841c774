# Sphinx configuration for the twisted-sock documentation.
#
# Build (warnings are errors):
#     sphinx-build -W -b html docs docs/_build/html
#
# No extension that needs the network; the API reference is written by hand
# (the code's docstrings are epytext, which autodoc would not render well).

import os
import re

_here = os.path.dirname(os.path.abspath(__file__))


def _version():
    """The version from twisted_sock/__init__.py, without importing it."""
    path = os.path.join(_here, os.pardir, "twisted_sock", "__init__.py")
    with open(path, encoding="utf-8") as f:
        match = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M)
    return match.group(1) if match else "unknown"


project = "twisted-sock"
author = "twisted-sock developers"
copyright = "twisted-sock developers"
release = _version()
version = ".".join(release.split(".")[:2])

extensions = []

root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "examples", "Thumbs.db", ".DS_Store"]
templates_path = []

default_role = "literal"
highlight_language = "none"
pygments_style = "sphinx"
nitpicky = False

html_theme = "alabaster"
html_title = f"twisted-sock {release}"
html_static_path = ["_static"]  # custom.css: code blocks wrap to the page
html_theme_options = {
    "description": "A configurable socket object for Twisted",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
