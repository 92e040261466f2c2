#!/usr/bin/env bash
# Run the test suite in .venv/ (set up by scripts/setup.sh, which this runs first).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -f scripts/ros_env.sh ]; then
  # shellcheck disable=SC1091
  source scripts/ros_env.sh .venv
fi
exec .venv/bin/python -m pytest -q "$@"
