"""Training data: the synthetic renderer (``synthetic``, ``hand_mesh``, ``pose_sampler``,
``render``, ``backgrounds``) and loaders of public datasets (``public_datasets``)."""
