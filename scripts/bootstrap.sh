# Sourced by run.sh and test.sh: make ./.venv on first use and install the
# project into it (editable, with every extra). It reinstalls only when
# pyproject.toml or this file changes, so later runs start at once.
set -euo pipefail
PYTHON=${PYTHON:-python3}
# The exact torch releases this project is tested with. They are pinned here,
# not in pyproject.toml: the package itself accepts any torch >= 2.4, so
# `pip install involution` never replaces a newer torch (Colab's, say), while
# run.sh and test.sh always get these (on our build machines, from local disk).
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)

# pip install "$@", showing one line per phase instead of pip's hundreds: the
# package being fetched (updated in place on a terminal), then the install,
# which for torch unpacks several gigabytes and takes minutes. Errors and
# warnings pass through; pip's notes about absent local package folders on
# some machines are dropped.
pip_install() {
  local in_place=0
  [ -t 1 ] && in_place=1
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off "$@" 2>&1 \
    | awk -v in_place="$in_place" '
        # On a terminal one status line is rewritten in place; in a log, a line
        # every 25 packages and one for each download of a megabyte or more.
        function status(text, worth_a_line) {
          if (in_place) { printf "\r\033[K  %s", text; fflush() }
          else if (worth_a_line) { print "  " text; fflush() }
        }
        /is ignored: it is neither a file nor a directory/ || /^Looking in / { next }
        /^(Collecting|Obtaining|Processing) / {
          fetched++; n_parts = split($2, parts, "/")
          status("fetching " fetched ": " parts[n_parts], fetched % 25 == 0); next
        }
        /^ *Downloading / { status("fetching " fetched ": " $2 " " $3 $4, $4 ~ /^[MG]B/); next }
        /^Requirement already satisfied/ { present++; next }
        /^Installing collected packages/ {
          if (in_place) printf "\n"
          installing = split(substr($0, index($0, ":") + 2), names, ", ")
          print "  installing " installing " packages (" present + 0 " already present) ..."; fflush(); next
        }
        /^Successfully installed/ { print "  done: " NF - 2 " packages installed"; next }
        /^(ERROR|error)/ { failing = 1 }  # from here on, everything pip says explains the failure
        failing || /^WARNING/ { print; fflush(); next }
        END {
          if (in_place && fetched && !installing) printf "\n"
          if (!installing && present) print "  already installed"
        }'
  return "${PIPESTATUS[0]}"
}

if [ ! -x .venv/bin/python ]; then
  echo "Creating ./.venv with $("$PYTHON" --version) ..."
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "Installing into ./.venv (first run only; several GB, a few minutes):"
  echo "1/2 ${TORCH_PINS[*]}"
  pip_install "${TORCH_PINS[@]}"
  echo "2/2 the project (editable) with its training, notebook and test extras"
  pip_install "${TORCH_PINS[@]}" -e ".[all]"
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
