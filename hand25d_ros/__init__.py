"""hand25d_ros: 3D hand pose from one RGB camera by latent 2.5D heatmap regression."""
__version__ = "0.1.0"
