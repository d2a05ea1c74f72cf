"""Self-supervised pretraining: augmentations, objectives and unlabelled sources."""
