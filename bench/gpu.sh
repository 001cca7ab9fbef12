#!/usr/bin/env bash
# The GPU check (issue 14): one command on a machine with a CUDA GPU, under 8 minutes, one table.
# Installs what it needs first (as scripts/test.sh does); without a GPU it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh trainer
exec timeout 480 python bench/gpu.py "$@"
