"""Models: the Multi-ResNet and its parts."""

from xfer_jax.models.multiresnet import MultiResNet, ResidualBlock

__all__ = ["MultiResNet", "ResidualBlock"]
