"""Readers, one module per source format; each returns a RawDataset in g."""
