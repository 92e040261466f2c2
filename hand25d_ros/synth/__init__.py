"""Synthetic training data: the rigged WebXR hand, posed, rendered and composited."""
