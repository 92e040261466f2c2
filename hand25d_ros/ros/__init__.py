"""ROS 2 adapters of hand25d_ros: message conversions (``conversions``), the node
(``node``, console script ``hand25d_node``), the demo and an example consumer.

Importing this package does not import rclpy; its modules do.
"""
