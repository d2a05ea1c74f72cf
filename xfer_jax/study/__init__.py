"""A study of several transfer strategies, read from one grid per strategy.

  ROOT/<strategy>/sweep.json, results*.jsonl   (launch/real_v2.sh writes them)
  ROOT/sources/<source>/result.json             the source models' own results
  python -m launch.study --root=ROOT --out=DIR  # DIR/summary.md, results.csv, gains.png

Every grid of a study shares its targets, sizes, seeds and adaptation subsets (a
strategy changes only config.transfer, sweep.blocks, sweep.baseline and its epoch
cap; anything else is refused by name), so seed s of any strategy's cell adapted on the same
windows as seed s of the baseline, and every comparison is paired per seed.

The questions, each answered with the paired t-test over seeds of xfer_jax/study/stats.py,
Holm-corrected within its own family of comparisons:
  transfer vs baseline      every transfer cell of every strategy (one family)
  each strategy on average  per strategy, source (pools as one) and k: the gain
                            averaged over its cells per seed, tested over seeds
  multi-source vs single    per strategy, target, size and k: the pooled source
                            against each single source (sources named "a+b")
  self-supervised vs        per target, size and k: each self-supervised source
    supervised              ("simclr:a") against each supervised single source, in
                            grids of the same transfer strategy
  spectral vs temporal      per target, size, source: spectral-only transfer against
                            temporal-only transfer at each k
write() renders them as summary.md, results.csv and gains.png from the records alone.
"""

from xfer_jax.study.analysis import (  # noqa: F401  the public API, for launch.study
  against_reference,
  arm_name,
  at_epoch_cap,
  averaged_over_cells,
  below_half_the_baseline,
  corrected,
  multi_vs_single,
  paired,
  seed_values,
  self_supervised_vs_supervised,
  spectral_vs_temporal,
)
from xfer_jax.study.load import (  # noqa: F401
  DESIGN_FILE,
  FOLD_FIELD,
  SOURCES,
  STRATEGY_FIELDS,
  StudyError,
  grid_folders,
  load,
  publish,
  read_design,
  source_models,
)
from xfer_jax.study.render import (  # noqa: F401
  SUBSET_FIELDS,
  best_per_target_size,
  coverage,
  per_strategy,
  plot_gains,
  power_rows,
  primary_lines,
  questions_markdown,
  summary_markdown,
  write,
)
