"""``benchmarks/gpu_check.py --cpu`` runs every section through the real code paths."""

from __future__ import annotations

import pytest

from benchmarks import gpu_check


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert gpu_check.main(["--cpu"]) == 0
    out = capsys.readouterr().out
    assert "device: cpu" in out and "FAILED" not in out
    for name in gpu_check.SECTIONS:
        assert name in out
    assert "fed/model" in out and "queries/s" in out and "one epoch" in out


def test_without_cuda_it_asks_for_cpu(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU node
    assert gpu_check.main([]) == 2
    assert "--cpu" in capsys.readouterr().err
