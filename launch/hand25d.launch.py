"""Launch hand25d_node, optionally with RViz.

    ros2 launch hand25d_ros hand25d.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info device:=cuda rviz:=true

Arguments: image, camera_info, rois (topics), params_file (default: the package's
config/hand25d.yaml), namespace, device (auto | cpu | cuda), localization (track |
whole_image | external), max_hands (1-10), rviz (true | false), rviz_config (default:
config/hand25d.rviz), rviz_fixed_frame (default: the config's, camera_optical_frame; set it
to the image's header.frame_id). device, localization and max_hands override the params file.
RViz shows the topics of the node in its namespace. With
use_compressed in the params file the node reads <image>/compressed; rois is read only with
localization:=external, e.g. a detector's vision_msgs/Detection2DArray:

    ros2 launch hand25d_ros hand25d.launch.py localization:=external rois:=/hand_detector/detections
"""
import tempfile
from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("image", "/camera/image_rect", "sensor_msgs/Image topic (rgb8, bgr8, rgba8, bgra8, mono8, yuyv, uyvy, "
     "nv12, nv21, nv24, bayer_*8; 16 bit rgb16, bgr16, rgba16, bgra16, mono16, bayer_*16)"),
    ("camera_info", "/camera/camera_info", "sensor_msgs/CameraInfo topic of the image"),
    ("rois", "rois", "hand boxes for localization:=external (vision_msgs/Detection2DArray, or "
     "geometry_msgs/PolygonStamped without vision_msgs), paired with the images by stamp"),
    ("params_file", None, "YAML parameters of hand25d_node (default: config/hand25d.yaml)"),
    ("namespace", "", "namespace of the node and of its ~/ topics"),
    ("device", "auto", "network device: auto, cpu or cuda"),
    ("localization", "track", "track: find and follow hands in the full frame; whole_image: the image is a "
     "hand crop; external: hand boxes from the rois topic"),
    ("max_hands", "2", "most hands published per image (1-10)"),
    ("rviz", "false", "start RViz with config/hand25d.rviz"),
    ("rviz_config", None, "RViz configuration (default: config/hand25d.rviz)"),
    ("rviz_fixed_frame", "", "RViz fixed frame, e.g. the image's header.frame_id (default: the config's)"),
)


def _rviz(context):
    """RViz on the node's topics: the config names /hand25d/..., which the namespace moves."""
    from hand25d_ros.ros.rviz import rviz_view

    config = LaunchConfiguration("rviz_config").perform(context)
    namespace = LaunchConfiguration("namespace").perform(context)
    fixed_frame = LaunchConfiguration("rviz_fixed_frame").perform(context)
    if namespace.strip("/") or fixed_frame:
        view = rviz_view(Path(config).read_text(), namespace, fixed_frame)
        with tempfile.NamedTemporaryFile("w", prefix="hand25d_", suffix=".rviz", delete=False) as f:
            f.write(view)
        config = f.name
    return [Node(package="rviz2", executable="rviz2", name="rviz2", arguments=["-d", config], output="screen")]


def generate_launch_description():
    share = FindPackageShare("hand25d_ros")
    defaults = {"params_file": PathJoinSubstitution([share, "config", "hand25d.yaml"]),
                "rviz_config": PathJoinSubstitution([share, "config", "hand25d.rviz"])}
    args = [DeclareLaunchArgument(name, default_value=defaults.get(name, default), description=text)
            for name, default, text in ARGUMENTS]
    node = Node(
        package="hand25d_ros",
        executable="hand25d_node",
        name="hand25d",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"),
                    {name: LaunchConfiguration(name) for name in ("device", "localization", "max_hands")}],
        remappings=[(name, LaunchConfiguration(name)) for name in ("image", "camera_info", "rois")],
        output="screen",
        emulate_tty=True,
    )
    rviz = OpaqueFunction(function=_rviz, condition=IfCondition(LaunchConfiguration("rviz")))
    return LaunchDescription(args + [node, rviz])
