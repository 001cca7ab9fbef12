#!/usr/bin/env bash
# Creates .venv and installs the project with the pinned torch; skips work already done.
# Usage: source scripts/setup.sh [EXTRAS]
#   EXTRAS: comma-separated extras of pyproject.toml [trainer]: "trainer" is what the demo needs
#   (the runner and the trainer it launches), "trainer,dev" the test suite, "" the runner alone.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1-trainer}"
python="${PYTHON:-python3}"
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
fi
# shellcheck disable=SC1091
. "$root/.venv/bin/activate"
stamp="$root/.venv/.installed-$(cat "$root/pyproject.toml" "$root/constraints.txt" | sha1sum | cut -c1-12)-${extras:-base}"
if [ ! -f "$stamp" ]; then
  python -m pip install --quiet --upgrade pip
  target="$root"
  [ -n "$extras" ] && target="$root[$extras]"
  python -m pip install --quiet -c "$root/constraints.txt" -e "$target"
  touch "$stamp"
fi
export NO_ALBUMENTATIONS_UPDATE=1
