"""The RViz view of the node for a given namespace and fixed frame (launch/hand25d.launch.py).

config/hand25d.rviz names the node's topics as ``/hand25d/...``; a node launched in a
namespace publishes ``/<namespace>/hand25d/...``, and RViz resolves a display's topic as
written, so the launch file writes a copy of the view for the namespace. No rclpy here.
"""
from __future__ import annotations

import re

from ..messages import FRAME_ID_PATTERN, NAMESPACE_PATTERN

NODE_TOPIC_PREFIX = "/hand25d/"


def rviz_view(text: str, namespace: str = "", fixed_frame: str = "") -> str:
    """An RViz config for a node in ``namespace`` ('' or '/': the root) with ``fixed_frame``
    ('': the config's own).

    Args:
        text: the RViz config (YAML) naming the node's topics ``/hand25d/...``.
        namespace: e.g. ``robot1`` or ``/robot1/arm``.
        fixed_frame: a TF frame id, e.g. the image's ``header.frame_id``.

    Returns:
        the config with each ``Value: /hand25d/...`` topic under ``/<namespace>`` and, where
        given, the fixed frame replaced; the rest of the text unchanged.
    """
    if not re.fullmatch(NAMESPACE_PATTERN, namespace or ""):
        raise ValueError(f"namespace {namespace!r} is not a ROS namespace (names of letters, digits and "
                         "underscores separated by '/')")
    if fixed_frame and not re.fullmatch(FRAME_ID_PATTERN, fixed_frame.lstrip("/")):
        raise ValueError(f"fixed frame {fixed_frame!r} is not a TF frame id")
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    text, n = re.subn(r"^(\s*Value:\s*)" + re.escape(NODE_TOPIC_PREFIX), lambda m: m.group(1) + ns + NODE_TOPIC_PREFIX,
                      text, flags=re.M)
    if n == 0:
        raise ValueError(f"the RViz config names no {NODE_TOPIC_PREFIX}... topic to move into the namespace")
    if fixed_frame:
        text, n = re.subn(r"^(\s*Fixed Frame:\s*).*$", lambda m: m.group(1) + fixed_frame.lstrip("/"), text, flags=re.M)
        if n != 1:
            raise ValueError("the RViz config has no single 'Fixed Frame' to set")
    return text
