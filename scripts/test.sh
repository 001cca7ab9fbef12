#!/usr/bin/env bash
# The whole test suite; installs what it needs (the dev extra) first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh dev
python -m pytest "$@"
