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
  # (the filter drops pip's notes about absent local package folders on some machines)
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The deck test (tests/test_deck.py) drives a real headless Chromium through
# Selenium. test.sh calls this: when no browser is found and we are root on a
# Debian/Ubuntu machine, it installs the distribution's chromium and
# chromium-driver packages (slow once, instant afterwards). Otherwise it only
# warns; the deck test then fails and says how to install them.
ensure_browser() {
  local browser=""
  for candidate in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$candidate" >/dev/null 2>&1; then browser=$candidate; break; fi
  done
  if [ -n "$browser" ] && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing chromium and chromium-driver for the deck test (first run only) ..."
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
        || echo "warning: could not install chromium/chromium-driver; tests/test_deck.py will fail" >&2
    fi
  else
    echo "warning: no chromium/chromedriver found and cannot install them (not root or no apt-get);" \
         "tests/test_deck.py will fail: install chromium and chromium-driver" >&2
  fi
}
