# Sourced by run.sh and test.sh: make ./.venv on first use and install the
# project into it (editable, with the test extras). It reinstalls only when
# pyproject.toml changes, so later runs start at once.
set -euo pipefail
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "Creating ./.venv with $("$PYTHON" --version) ..."
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing the project and its dependencies into ./.venv (first run only) ..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
