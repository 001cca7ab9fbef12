#!/usr/bin/env bash
# The main job end to end on the embedded default: CPU, synthetic SoccerNet-format frames, ./runs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh trainer
runner submit jobs/demo.yaml
runner status demo --store ./runs
