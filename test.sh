#!/usr/bin/env bash
# The whole test suite: the package's tests and the notebooks under nbval.
# Installs what it needs into ./.venv on first use. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
