"""hand25d_ros: builds with colcon (ament_python) and installs with pip."""
from glob import glob

from setuptools import find_packages, setup

package_name = "hand25d_ros"

# Dependencies in one place. torch is not pinned here: install torch==2.13.0 first
# (scripts/setup.sh does) so that pip keeps the CPU build already on disk.
install_requires = [
    "numpy>=1.24",
    "torch>=2.2",
    "opencv-python-headless>=4.8",
    "scipy>=1.10",
    "pyyaml>=6",
    "tqdm>=4.60",
    "matplotlib>=3.7",
    "pillow>=9",
]
extras_require = {
    # the synthetic renderer and training
    "train": ["moderngl>=5.8", "pygltflib>=1.16", "scikit-image>=0.22"],
    # offline runs on rosbags (no ROS install needed)
    "bags": ["rosbags>=0.10"],
    # hand25d-export --onnx
    "export": ["onnx>=1.16"],
    "test": ["pytest>=8", "hypothesis>=6.100", "onnx>=1.16", "onnxruntime>=1.18"],
    # ROS 2 Kilted from PyPI wheels (a sourced ROS install works as well); tf2_msgs
    # builds from its IDL: scripts/install_ros.sh
    "ros": ["ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-sensor-msgs", "ros-geometry-msgs",
            "ros-std-msgs", "ros-visualization-msgs", "ros-diagnostic-msgs"],
}

setup(
    name=package_name,
    version="0.1.0",
    description="3D hand pose from one RGB camera (latent 2.5D heatmaps), with a ROS 2 node",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={package_name: ["weights/*.pt", "weights/*.md", "assets/generic-hand/*",
                                 "samples/*", "samples/**/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
    ],
    install_requires=install_requires,
    extras_require=extras_require,
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "hand25d_node = hand25d_ros.ros.commands:node",
            "hand25d_demo = hand25d_ros.ros.commands:demo",
            "hand25d_fingertip = hand25d_ros.ros.commands:fingertip",
            "hand25d = hand25d_ros.cli:main",
            "hand25d-train = hand25d_ros.train:main",
            "hand25d-train-detector = hand25d_ros.detector_train:main",
            "hand25d-eval = hand25d_ros.evaluate:main",
            "hand25d-export = hand25d_ros.export:main",
            "hand25d-render-sheet = hand25d_ros.tools.render_sheet:main",
        ],
    },
)
