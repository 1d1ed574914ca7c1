#!/usr/bin/env bash
# The whole test suite: the package's tests, the notebooks under nbval (fast
# mode, see conftest.py) and the slide deck in a headless Chromium.
# Installs what it needs into ./.venv (and, as root on Debian/Ubuntu, the
# chromium and chromium-driver packages) on first use. Extra arguments go to pytest
# (it runs on every core with pytest-xdist, see conftest.py; -n 0 for one process).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_browser
exec .venv/bin/python -m pytest "$@"
