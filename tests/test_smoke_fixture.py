from harness.datasets import Dataset


def test_tiny_dataset_roundtrip(tiny_dataset: Dataset) -> None:
    assert tiny_dataset.pool_size == 300
    idx = tiny_dataset.uid_index()
    codes, rows = idx.lookup(tiny_dataset.uids("train")[[5, 7]])
    assert codes.tolist() == [0, 0] and rows.tolist() == [5, 7]
    codes, _ = idx.lookup(tiny_dataset.uids("test1")[:3])
    assert set(codes.tolist()) == {idx.splits.index("test1")}
    assert idx.lookup(__import__("numpy").array(["nope"]))[0].tolist() == [-1]
