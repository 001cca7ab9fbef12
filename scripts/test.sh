#!/usr/bin/env bash
# The whole test suite; installs what it needs (the trainer and dev extras) first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh trainer,dev
python -m pytest "$@"
