"""xfer_jax: cross-dataset transfer learning for wearable activity recognition."""

__version__ = "0.1.0"
