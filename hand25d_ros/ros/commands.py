"""The console scripts of the ROS 2 commands (hand25d_node, hand25d_demo, hand25d_fingertip).

``pip install .`` installs them whatever the environment, and ROS 2 is not among the
package's requirements (a ROS install, or the PyPI wheels that scripts/install_ros.sh puts in
a venv). Where it is missing, each command says so and how to get it, in place of the
traceback of its first ROS import. Importing this module imports no ROS module: the command does.
"""
from __future__ import annotations

import importlib
import sys

# the top-level names of the ROS 2 Python packages hand25d_ros/ros/ imports
_ROS_PREFIXES = ("rclpy", "rcl_", "rmw", "rosidl", "builtin_interfaces", "tf2_", "ament_")
_ROS_SUFFIXES = ("_msgs", "_interfaces")


def _is_ros_module(name: str | None) -> bool:
    top = (name or "").split(".")[0]
    return bool(top) and (top.startswith(_ROS_PREFIXES) or top.endswith(_ROS_SUFFIXES))


def _main_of(module: str):
    return importlib.import_module(f"hand25d_ros.ros.{module}").main


# what every one of the commands imports (vision_msgs is optional: the node falls back without it)
REQUIRED_ROS_MODULES = ("rclpy", "builtin_interfaces", "std_msgs", "sensor_msgs", "geometry_msgs",
                        "visualization_msgs", "diagnostic_msgs", "tf2_msgs")


def _no_ros(command: str, name: str) -> SystemExit:
    return SystemExit(
        f"{command}: needs ROS 2 (Python module {name!r} not found in {sys.executable}). Source a "
        "ROS 2 install (source /opt/ros/<distro>/setup.bash), or put the ROS 2 Kilted wheels from PyPI "
        "into this environment: scripts/install_ros.sh <venv> from the repository, then "
        "source scripts/ros_env.sh <venv> (scripts/setup.sh does both for .venv/)")


def _run(command: str, module: str) -> int:
    import importlib.util
    for name in REQUIRED_ROS_MODULES:     # before any work: the demo imports rclpy once it has started
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise _no_ros(command, name)
    try:
        main = _main_of(module)
    except ModuleNotFoundError as exc:
        if not _is_ros_module(exc.name):
            raise
        raise _no_ros(command, exc.name) from None
    return main()


def node() -> int:
    return _run("hand25d_node", "node")


def demo() -> int:
    return _run("hand25d_demo", "demo")


def fingertip() -> int:
    return _run("hand25d_fingertip", "example_consumer")
