# shellcheck shell=bash
# Environment for ROS 2 from PyPI wheels installed in a venv (scripts/install_ros.sh).
#
#   source scripts/ros_env.sh [VENV_DIR]     # default: .venv at the repository root
#
# Sets LD_LIBRARY_PATH (the wheels' shared libraries live in VENV/lib and in
# site-packages/ros_*.libs), marks the wheels' re-exec bootstrap as done (so Python starts
# once, not twice), AMENT_PREFIX_PATH (the ament index: message packages, tf2_msgs built
# here) and the DDS middleware. Harmless where ROS is not installed. Safe under `set -eu`.
_h25_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_h25_venv="${1:-$_h25_repo/.venv}"
if [ -d "$_h25_venv" ]; then
  _h25_venv="$(cd "$_h25_venv" && pwd)"
  for _h25_d in "$_h25_venv/lib" "$_h25_venv"/lib/python3*/site-packages/ros_*.libs; do
    [ -d "$_h25_d" ] || continue
    case ":${LD_LIBRARY_PATH:-}:" in
      *":$_h25_d:"*) ;;
      *) export LD_LIBRARY_PATH="$_h25_d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
    esac
  done
  export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
  case ":${AMENT_PREFIX_PATH:-}:" in
    *":$_h25_venv:"*) ;;
    *) export AMENT_PREFIX_PATH="$_h25_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
  esac
  case ":${PATH}:" in
    *":$_h25_venv/bin:"*) ;;
    *) export PATH="$_h25_venv/bin:$PATH" ;;
  esac
  export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
fi
unset _h25_repo _h25_venv _h25_d
