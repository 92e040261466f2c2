"""Launch hand25d_node, optionally with RViz.

    ros2 launch hand25d_ros hand25d.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info device:=cuda rviz:=true

Arguments: image, camera_info (topics), params_file (default: the package's
config/hand25d.yaml), namespace, device (auto | cpu | cuda), rviz (true | false),
rviz_config (default: config/hand25d.rviz). With use_compressed in the params file the node
reads <image>/compressed.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("image", "/camera/image_rect", "sensor_msgs/Image topic (rgb8, bgr8, rgba8, bgra8, mono8)"),
    ("camera_info", "/camera/camera_info", "sensor_msgs/CameraInfo topic of the image"),
    ("params_file", None, "YAML parameters of hand25d_node (default: config/hand25d.yaml)"),
    ("namespace", "", "namespace of the node and of its ~/ topics"),
    ("device", "auto", "network device: auto, cpu or cuda"),
    ("rviz", "false", "start RViz with config/hand25d.rviz"),
    ("rviz_config", None, "RViz configuration (default: config/hand25d.rviz)"),
)


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
        parameters=[LaunchConfiguration("params_file"), {"device": LaunchConfiguration("device")}],
        remappings=[("image", LaunchConfiguration("image")), ("camera_info", LaunchConfiguration("camera_info"))],
        output="screen",
        emulate_tty=True,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", LaunchConfiguration("rviz_config")],
        condition=IfCondition(LaunchConfiguration("rviz")),
        output="screen",
    )
    return LaunchDescription(args + [node, rviz])
