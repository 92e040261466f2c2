"""The ROS commands in an environment without ROS 2.

`pip install .` installs hand25d_node, hand25d_demo and hand25d_fingertip whatever the
environment; where ROS 2 is not there (a plain venv: the PyPI wheels come from
scripts/install_ros.sh, not from the package's requirements) each ended in a traceback,
"ModuleNotFoundError: No module named 'rclpy'" (the demo: 'builtin_interfaces')."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _console_scripts():
    text = (REPO / "setup.py").read_text()
    return dict(re.findall(r'"(hand25d_node|hand25d_demo|hand25d_fingertip) = ([\w.]+:\w+)"', text))


@pytest.mark.parametrize("command", ["hand25d_node", "hand25d_demo", "hand25d_fingertip"])
@pytest.mark.parametrize("missing", ["rclpy", "builtin_interfaces"])
def test_a_ros_command_without_ros_says_how_to_get_it(command, missing):
    target = _console_scripts()[command]
    module, func = target.split(":")
    # a fresh interpreter where the ROS module cannot be imported, as in a plain venv
    code = (f"import sys; sys.modules[{missing!r}] = None; sys.argv = [{command!r}]\n"
            f"from {module} import {func}\nsys.exit({func}())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode not in (0, None), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert command in proc.stderr and missing in proc.stderr, proc.stderr
    assert "scripts/install_ros.sh" in proc.stderr and "scripts/ros_env.sh" in proc.stderr, proc.stderr


def test_the_ros_commands_still_reach_their_mains():
    from hand25d_ros.ros import commands as ros_commands
    from hand25d_ros.ros import demo, example_consumer, node
    assert ros_commands._main_of("node") is node.main
    assert ros_commands._main_of("demo") is demo.main
    assert ros_commands._main_of("example_consumer") is example_consumer.main
