"""Thin absl entry points: flags and a config in, one library call out."""

from absl import logging as absl_logging

from xfer_jax.runtime import enable_compilation_cache

enable_compilation_cache()
# orbax reports every save at INFO; keep the console for progress and results
absl_logging.set_verbosity(absl_logging.WARNING)
