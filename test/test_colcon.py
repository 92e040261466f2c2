"""colcon builds the package as ament_python into a fresh workspace, with the layout
`ros2 run` / `ros2 launch` expect, and the installed node script runs."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COLCON = shutil.which("colcon") or str(Path(sys.executable).parent / "colcon")
if not Path(COLCON).is_file():
    pytest.skip("colcon not installed (scripts/install_ros.sh installs colcon-common-extensions)",
                allow_module_level=True)

# what a source checkout of the package is, for colcon (ros_interfaces/ is COLCON_IGNOREd anyway)
PACKAGE_FILES = ("package.xml", "setup.py", "setup.cfg", "README.md", "resource", "hand25d_ros", "launch", "config")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = tmp_path_factory.mktemp("colcon_ws")
    src = ws / "src" / "hand25d_ros"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in PACKAGE_FILES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=ignore)
        elif p.is_file():
            shutil.copy2(p, src / name)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    run = subprocess.run([COLCON, "build", "--base-paths", "src", "--event-handlers", "console_cohesion+"],
                         cwd=ws, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return ws


def test_colcon_sees_an_ament_python_package(workspace):
    run = subprocess.run([COLCON, "list", "--base-paths", "src"], cwd=workspace, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    rows = [line.split("\t") for line in run.stdout.splitlines()]
    assert ["hand25d_ros", "src/hand25d_ros", "(ros.ament_python)"] in rows, run.stdout


def test_repository_interfaces_are_ignored_by_colcon():
    assert (REPO / "ros_interfaces" / "COLCON_IGNORE").is_file()


def test_install_layout(workspace):
    inst = workspace / "install" / "hand25d_ros"
    share = inst / "share" / "hand25d_ros"
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "hand25d.launch.py").is_file()
    assert (share / "config" / "hand25d.yaml").is_file()
    assert (share / "config" / "hand25d.rviz").is_file()
    assert (inst / "share" / "ament_index" / "resource_index" / "packages" / "hand25d_ros").is_file()
    node = inst / "lib" / "hand25d_ros" / "hand25d_node"
    assert node.is_file() and os.access(node, os.X_OK)
    site = list(inst.glob("lib/python3*/site-packages/hand25d_ros/ros/node.py"))
    assert site, "the Python package is not installed into the workspace"


def test_installed_node_script_runs_from_the_workspace(workspace):
    inst = workspace / "install" / "hand25d_ros"
    site = next(inst.glob("lib/python3*/site-packages"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
               ROS_LOG_DIR=str(workspace / "ros_log"), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    probe = ("import hand25d_ros.ros.node as n; print(n.__file__)")
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120,
                         cwd=workspace)
    assert run.returncode == 0 and str(site) in run.stdout, run.stdout + run.stderr
    # an invalid parameter: the installed script starts, validates and exits with the reason
    run = subprocess.run([str(inst / "lib" / "hand25d_ros" / "hand25d_node"), "--ros-args", "-p", "device:=tpu"],
                         env=env, capture_output=True, text=True, timeout=120, cwd=workspace)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "cannot start" in run.stdout + run.stderr and "device" in run.stdout + run.stderr
