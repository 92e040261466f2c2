"""launch/hand25d.launch.py and config/hand25d.rviz.

The launch file itself needs `launch` and `launch_ros` (a ROS install; not on PyPI):
those tests are skipped where they are not importable. The static checks run everywhere.
"""
import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "hand25d.launch.py"
RVIZ_FILE = REPO / "config" / "hand25d.rviz"
ARGUMENTS = {"image", "camera_info", "rois", "params_file", "namespace", "device", "localization", "max_hands",
             "rviz", "rviz_config", "rviz_fixed_frame"}


def _literal_arguments():
    tree = ast.parse(LAUNCH_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets):
            return [row[0] for row in ast.literal_eval(node.value)]
    raise AssertionError("no ARGUMENTS table in the launch file")


def test_launch_file_declares_its_arguments_and_names_the_console_script():
    text = LAUNCH_FILE.read_text()
    assert set(_literal_arguments()) == ARGUMENTS
    assert "def generate_launch_description" in text
    assert 'executable="hand25d_node"' in text and 'package="hand25d_ros"' in text
    assert '"hand25d.yaml"' in text and '"hand25d.rviz"' in text
    setup = (REPO / "setup.py").read_text()
    assert re.search(r"hand25d_node\s*=\s*hand25d_ros\.ros\.commands:node", setup)   # checks for ROS 2, then node.main
    assert "launch/*.launch.py" in setup and "config/*.rviz" in setup


def test_rviz_config_shows_the_node_topics():
    from hand25d_ros.ros.node import HandPoseNode  # noqa: F401  (the topics are defined there)

    cfg = yaml.safe_load(RVIZ_FILE.read_text())
    displays = cfg["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays if "Topic" in d}
    assert topics == {"/hand25d/markers", "/hand25d/keypoints", "/hand25d/poses", "/hand25d/palm_pose",
                      "/hand25d/debug_image"}
    classes = {d["Class"] for d in displays}
    assert {"rviz_default_plugins/MarkerArray", "rviz_default_plugins/TF"} <= classes
    assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"]


def test_rviz_view_follows_the_namespace_and_fixed_frame():
    """A node launched in a namespace publishes /<ns>/hand25d/...: the view RViz gets must name
    those topics, or it shows nothing but TF."""
    from hand25d_ros.ros.rviz import rviz_view

    text = RVIZ_FILE.read_text()
    assert rviz_view(text) == text and rviz_view(text, "/") == text
    for ns in ("robot1", "/robot1", "/robot1/arm/"):
        cfg = yaml.safe_load(rviz_view(text, ns, "camera_color_optical_frame"))
        displays = cfg["Visualization Manager"]["Displays"]
        topics = {d["Topic"]["Value"] for d in displays if "Topic" in d}
        prefix = "/" + ns.strip("/") + "/hand25d/"
        assert len(topics) == 5 and all(t.startswith(prefix) for t in topics), topics
        assert cfg["Visualization Manager"]["Global Options"]["Fixed Frame"] == "camera_color_optical_frame"
        # everything else as it was
        assert cfg["Panels"] == yaml.safe_load(text)["Panels"]
    for bad in ("robot 1", "1robot", "a//b", "~/x"):
        with pytest.raises(ValueError, match="not a ROS namespace"):
            rviz_view(text, bad)
    with pytest.raises(ValueError, match="not a TF frame id"):
        rviz_view(text, "", "cam frame")
    with pytest.raises(ValueError, match="names no /hand25d/"):
        rviz_view("Visualization Manager: {}\n", "robot1")


def test_launch_file_gives_rviz_the_namespaced_view():
    text = LAUNCH_FILE.read_text()
    assert "OpaqueFunction(function=_rviz" in text and "rviz_view(" in text
    assert 'LaunchConfiguration("namespace").perform(context)' in text


try:
    import launch  # noqa: F401
    import launch_ros  # noqa: F401
    HAVE_LAUNCH = True
except ImportError:
    HAVE_LAUNCH = False
needs_launch = pytest.mark.skipif(not HAVE_LAUNCH, reason="launch/launch_ros not importable: they come with a "
                                  "ROS 2 install (apt ros-kilted-launch-ros), not from PyPI")


def _load():
    spec = importlib.util.spec_from_file_location("hand25d_launch", LAUNCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.generate_launch_description()


@needs_launch
def test_launch_description_builds_with_node_and_optional_rviz():
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    ld = _load()
    declared = {a.name for a in ld.entities if isinstance(a, DeclareLaunchArgument)}
    assert declared == ARGUMENTS
    from launch.actions import OpaqueFunction
    nodes = [a for a in ld.entities if isinstance(a, Node)]
    assert len(nodes) == 1 and nodes[0].condition is None
    (rviz,) = [a for a in ld.entities if isinstance(a, OpaqueFunction)]
    assert rviz.condition is not None


@needs_launch
def test_launch_arguments_resolve():
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument

    ld = _load()
    ctx = LaunchContext()
    for a in ld.entities:
        if isinstance(a, DeclareLaunchArgument) and a.name in ("image", "device", "rviz"):
            a.visit(ctx)
    assert ctx.launch_configurations["device"] == "auto"
    assert ctx.launch_configurations["rviz"] == "false"
