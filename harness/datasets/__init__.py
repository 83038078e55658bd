"""Datasets on disk: the benchmark format, split tables, embeddings and the UID index.

    ds = Dataset.open(spec, data_root=settings.data_root)
    pool = ds.split(ds.spec.pool)               # DataFrame: uid, label, filename, ...
    rows = ds.uid_index().pool_rows(uids)       # UID -> pool row, explicitly
    feats = ds.embeddings(ds.spec.pool, "image")  # (n, d) float32, aligned to pool rows

See docs/benchmark-format.md for the layout.
"""

from harness.datasets.dataset import Dataset, DatasetDir

__all__ = ["Dataset", "DatasetDir"]
