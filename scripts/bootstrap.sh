# Sourced by run.sh and test.sh: make ./.venv on first use and install the
# project into it (editable, with every extra). It reinstalls only when
# pyproject.toml or this file changes, so later runs start at once.
set -euo pipefail
PYTHON=${PYTHON:-python3}
# The exact torch releases this project is tested with. They are pinned here,
# not in pyproject.toml: the package itself accepts any torch >= 2.4, so
# `pip install involution` never replaces a newer torch (Colab's, say), while
# run.sh and test.sh always get these (where a local package mirror has them, from there).
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

# The deck is printed to PDF by a headless Chromium (run.sh, the appendix notebook), and
# the deck tests drive Chromium through Selenium and read the PDF's pages with
# poppler's pdftoppm/pdftotext. run.sh and test.sh call this: when a tool is
# missing and we are root on a Debian/Ubuntu machine, it installs the
# distribution's chromium, chromium-driver and poppler-utils packages (slow
# once, instant afterwards). Otherwise it only warns, naming what to install.
ensure_browser() {
  local browser="" packages="chromium chromium-driver poppler-utils"
  for candidate in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$candidate" >/dev/null 2>&1; then browser=$candidate; break; fi
  done
  if [ -n "$browser" ] && command -v chromedriver >/dev/null 2>&1 \
      && command -v pdftoppm >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${packages} for the deck's PDF and its tests (first run only) ..."
    # shellcheck disable=SC2086  # the package names are meant to split
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null 2>&1; then
      apt-get update -qq >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null 2>&1 \
        || echo "warning: could not install ${packages}; the deck's PDF and its tests will fail" >&2
    fi
  else
    echo "warning: a browser, chromedriver or pdftoppm/pdftotext is missing and cannot be installed" \
         "here (not root or no apt-get): install ${packages} for the deck's PDF and its tests" >&2
  fi
}
