#!/usr/bin/env bash
# The main job on bundled defaults: set up .venv/, then start hand25d_node as its own
# process on the bundled sample frames over real DDS, print what it publishes and save
# an overlay (out/demo/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# shellcheck disable=SC1091
source scripts/ros_env.sh .venv
exec .venv/bin/python -m hand25d_ros.ros.demo "$@"
