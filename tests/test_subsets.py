"""Adaptation subsets: nested, stratified, seeded."""

import numpy as np
import pytest

from xfer_jax.data import DataError, adaptation_subsets, cap_sizes


def _labels():
  return np.repeat(np.arange(5), [400, 200, 100, 50, 250])


def test_nested_stratified_and_seeded():
  y = _labels()
  sizes = [20, 50, 100, 200, 400, 800]
  subsets = adaptation_subsets(y, sizes, seed=3)
  for small, large in zip(sizes, sizes[1:]):
    assert set(subsets[small]) <= set(subsets[large])
  share = np.bincount(y) / len(y)
  for size, idx in subsets.items():
    assert len(idx) == len(set(idx)) == size
    counts = np.bincount(y[idx], minlength=5)
    assert np.all(np.abs(counts - share * size) < 1.0 + 1e-9), (size, counts)
  again = adaptation_subsets(y, sizes, seed=3)
  assert all(np.array_equal(subsets[s], again[s]) for s in sizes)
  other = adaptation_subsets(y, sizes, seed=4)
  assert not np.array_equal(subsets[100], other[100])


def test_sizes_capped_and_checked():
  assert cap_sizes([20, 50, 5000, 0], [3000, 421, 800]) == [20, 50, 421]
  with pytest.raises(DataError, match="adaptation size 5000 outside 1..1000"):
    adaptation_subsets(_labels(), [5000], seed=0)
