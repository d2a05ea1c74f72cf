"""Known datasets: name -> how to read it.

An entry is {reader, path (relative to config.data.data_dir, or absolute),
options (the reader's keyword arguments), preprocess (config.data fields this
dataset sets for itself, e.g. its label_rule)}. A user's own datasets are entries
of the same form in config.data.datasets (configs/own.py): they are found by name
wherever a built-in one is (source, target, datasets, sweep.pairs, launch.prepare).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from xfer_jax.data import synthetic
from xfer_jax.data.readers import hmp, interchange, opportunity, pamap2, skoda, wisdm2019
from xfer_jax.data.recording import DataError, RawDataset

READERS: dict[str, Callable[..., RawDataset]] = {
    "synthetic": synthetic.read,
    "interchange": interchange.read,
    "wisdm2019": wisdm2019.read,
    "hmp": hmp.read,
    "pamap2": pamap2.read,
    "opportunity": opportunity.read,
    "skoda": skoda.read,
}

# name -> {reader, path (relative to data_dir), options}. Label choices are
# documented in each reader; the real datasets of shared/data come as interchange files.
DATASETS: dict[str, dict] = {
    **{name: {"reader": "synthetic", "path": "", "options": {"preset": name}}
       for name in synthetic.PRESETS},
    # the paper's datasets, from their original files
    "pamap2": {"reader": "pamap2", "path": "PAMAP2_Dataset/Protocol", "options": {}},
    "opportunity": {"reader": "opportunity", "path": "OpportunityUCIDataset/dataset",
                    "options": {}},
    # Skoda's gestures last 1-3 s between null stretches (dropped): with the majority
    # rule a 4 s window is mostly null and a 1.5 s gesture never labels one. The
    # labelled-majority rule labels a window by its gestures' samples when they fill
    # at least a quarter of it (1 s of 4 s; preprocess.make_windows)
    "skoda": {"reader": "skoda", "path": "SkodaMiniCP/right_classall_clean.mat", "options": {},
              "preprocess": {"label_rule": "labelled_majority", "min_labelled": 0.25}},
    # JSI-FOS is not public: bring it as an interchange file (50 Hz, 8 classes)
    "jsi_fos": {"reader": "interchange", "path": "jsi_fos.npz", "options": {"name": "jsi_fos"}},
    # real wrist datasets available as interchange files (see shared/data/README.md)
    "wisdm2019": {"reader": "interchange", "path": "wisdm2019_watch.npz",
                  "options": {"name": "wisdm2019"}},
    "hmp": {"reader": "interchange", "path": "hmp_wrist.npz", "options": {"name": "hmp"}},
    # NULL (id 0) is kept: it is a third of the stream, as in Skoda/OPPORTUNITY's raw data
    "actrectut": {"reader": "interchange", "path": "actrectut_arm.npz",
                  "options": {"name": "actrectut", "null_label": 0}},
    # two corrupt samples in the source: clip to the sensor's +-2 g range. Its "sit down"
    # and "stand up" trials (and some "throwing a ball") are shorter than 4 s: few or no
    # 4 s windows have them. They stay declared classes, as in the first real-data
    # study's records; the loss is declared here, so prepare's table shows it (lost_*)
    # without a warning
    "berkeley_mhad": {"reader": "interchange", "path": "berkeley_mhad_wrist.npz",
                      "options": {"name": "berkeley_mhad", "clip_g": 2.0},
                      "preprocess": {"allow_lost_classes": True}},
    # the same four from their raw files
    "wisdm2019_raw": {"reader": "wisdm2019", "path": "wisdm-dataset/raw/watch/accel",
                      "options": {}},
    "hmp_raw": {"reader": "hmp", "path": "HMP_Dataset", "options": {}},
}


ENTRY_KEYS = ("reader", "path", "options", "preprocess")


def dataset_entry(name: str, own: Mapping[str, Mapping] | None = None) -> dict:
  """The entry of a dataset: one of `own` (config.data.datasets) or a built-in one."""
  own = dict(own or {})
  if name in own:
    return check_entry(name, own[name])
  if name not in DATASETS:
    raise DataError(f"unknown dataset {name!r}; built-in datasets: {sorted(DATASETS)}; "
                    f"config.data.datasets declares {sorted(own) or 'none'} (declare your own "
                    "there, as configs/own.py shows)")
  return DATASETS[name]


def check_entry(name: str, entry: Mapping) -> dict:
  entry = dict(entry)
  unknown = sorted(set(entry) - set(ENTRY_KEYS) - {"name"})
  if unknown:
    raise DataError(f"config.data.datasets.{name}: unknown key(s) {unknown}; an entry has "
                    f"{list(ENTRY_KEYS)}")
  if entry.get("reader") not in READERS:
    raise DataError(f"config.data.datasets.{name}.reader={entry.get('reader')!r}: expected one "
                    f"of {sorted(READERS)}")
  if entry["reader"] != "synthetic" and not entry.get("path"):
    raise DataError(f"config.data.datasets.{name}.path is empty: give the file or folder to read")
  return {"path": "", "options": {}, **entry}


def read_raw(reader: str, path: str, options: dict) -> RawDataset:
  if reader not in READERS:
    raise DataError(f"unknown reader {reader!r}; known readers: {sorted(READERS)}")
  if reader == "synthetic":
    return READERS[reader](**options)
  return READERS[reader](path, **options)
