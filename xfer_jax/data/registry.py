"""Known datasets: name -> how to read it. A user's own dataset is an interchange
file (reader 'interchange') or any reader with a path."""

from __future__ import annotations

from collections.abc import Callable

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
    "skoda": {"reader": "skoda", "path": "SkodaMiniCP/right_classall_clean.mat", "options": {}},
    # JSI-FOS is not public: bring it as an interchange file (50 Hz, 8 classes)
    "jsi_fos": {"reader": "interchange", "path": "jsi_fos.npz", "options": {"name": "jsi_fos"}},
    # real wrist datasets available as interchange files (see shared/data/README.md)
    "wisdm2019": {"reader": "interchange", "path": "wisdm2019_watch.npz",
                  "options": {"name": "wisdm2019"}},
    "hmp": {"reader": "interchange", "path": "hmp_wrist.npz", "options": {"name": "hmp"}},
    # NULL (id 0) is kept: it is a third of the stream, as in Skoda/OPPORTUNITY's raw data
    "actrectut": {"reader": "interchange", "path": "actrectut_arm.npz",
                  "options": {"name": "actrectut", "null_label": 0}},
    # two corrupt samples in the source: clip to the sensor's +-2 g range
    "berkeley_mhad": {"reader": "interchange", "path": "berkeley_mhad_wrist.npz",
                      "options": {"name": "berkeley_mhad", "clip_g": 2.0}},
    # the same four from their raw files
    "wisdm2019_raw": {"reader": "wisdm2019", "path": "wisdm-dataset/raw/watch/accel",
                      "options": {}},
    "hmp_raw": {"reader": "hmp", "path": "HMP_Dataset", "options": {}},
}


def dataset_entry(name: str) -> dict:
  if name not in DATASETS:
    raise DataError(f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)} "
                    "(or give reader= and path= for your own)")
  return DATASETS[name]


def read_raw(reader: str, path: str, options: dict) -> RawDataset:
  if reader not in READERS:
    raise DataError(f"unknown reader {reader!r}; known readers: {sorted(READERS)}")
  if reader == "synthetic":
    return READERS[reader](**options)
  return READERS[reader](path, **options)
