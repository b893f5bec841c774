# Sourced by .ci/run and .ci/wheel-check: make python3.10 ... python3.13 (the
# Pythons pyproject.toml supports) runnable by those names, for tox and the
# wheel check. On a machine whose Pythons come from pyenv, its shims answer
# only for the selected versions: select every installed 3.10-3.13 too,
# keeping the current one first so `python3` does not change. Nothing is
# written to pyenv's own settings.

if command -v pyenv >/dev/null 2>&1; then
  _current=$(pyenv version-name 2>/dev/null | cut -d: -f1)
  _wanted=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.1[0-3]\.[0-9]+$' | tr '\n' ':')
  export PYENV_VERSION="${_current:+$_current:}${_wanted%:}"
  unset _current _wanted
fi

# python_for X.Y: the path of a working Python X.Y, or one line on stderr and
# exit status 1.
python_for() {
  local exe
  exe=$(command -v "python$1" 2>/dev/null) && "$exe" -c 'import sys' >/dev/null 2>&1 \
    && { "$exe" -c 'import sys; print(sys.executable)'; return 0; }
  echo "ci: no Python $1 on this machine (python$1 is not on PATH; install it, e.g. with pyenv)" >&2
  return 1
}
