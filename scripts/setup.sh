#!/usr/bin/env bash
# Set up .venv/ at the repository root: torch (CPU build), this package with its
# training and test extras, and ROS 2 Kilted from PyPI wheels (+ tf2_msgs built from IDL).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=24"
# torch first and exactly: any looser spec makes pip fetch a multi-GB CUDA build
.venv/bin/python -m pip install -q "torch==2.13.0"
# pinned versions for repeatable CI (requirements/constraints.txt)
.venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[train,test,bags]"
if [ -x scripts/install_ros.sh ] && [ "${HAND25D_SKIP_ROS:-0}" != "1" ]; then
  scripts/install_ros.sh .venv
fi
echo "setup done: $(.venv/bin/python -c 'import hand25d_ros, torch; print("hand25d_ros", hand25d_ros.__version__, "torch", torch.__version__)')"
