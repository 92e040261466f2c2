"""hand25d_ros: 3D hand pose from one RGB camera by latent 2.5D heatmap regression.

The ROS-free core (keypoints, geometry, model, estimator, data, training,
evaluation) lives here; the ROS 2 adapters live in ``hand25d_ros.ros``.
"""
__version__ = "0.1.0"

from .estimator import HandPose, HandPoseEstimator  # noqa: E402,F401
from .weights import WeightsError  # noqa: E402,F401

__all__ = ["HandPose", "HandPoseEstimator", "WeightsError", "__version__"]
