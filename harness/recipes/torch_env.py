"""Device, precision and seeding for the torch recipes (imported only when training).

    device = select_device()                        # "cuda" if available, else "cpu"
    with reproducible(seed=0, device=device):       # seeds python/numpy/torch, deterministic ops
        with autocast(device=device, amp="auto"):   # bf16/fp16 on cuda, nothing on cpu
            ...

On the CPU the same inputs give bit-identical models; on CUDA, deterministic algorithms are
requested with ``warn_only`` (some kernels have no deterministic version).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from harness.recipes.params import Amp


def select_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_description(device: str) -> str:
    """What the manifest records: the accelerator's name, or the CPU and its thread count."""
    if device.startswith("cuda"):
        return f"cuda ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def reproducible(*, seed: int, device: str) -> Iterator[None]:
    """Seed every RNG and request deterministic kernels; restores the global flags after."""
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    if device.startswith("cuda"):
        # cuBLAS needs a fixed workspace for reproducible GEMMs; only honoured before first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=not device.startswith("cpu"))
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    seed_everything(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[2:]


def amp_dtype(*, device: str, amp: Amp) -> torch.dtype | None:
    """The autocast dtype, or None for full precision. AMP runs on CUDA only."""
    if amp == "off" or not device.startswith("cuda"):
        return None
    if amp == "bf16" or (amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def autocast(*, device: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=dtype)


def grad_scaler(dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """Loss scaling for fp16 only; a disabled scaler is a pass-through otherwise."""
    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)


def prepare_model(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """Move to ``device``; on CUDA in ``channels_last`` (faster convolutions under autocast)."""
    if device.startswith("cuda"):
        return model.to(device).to(memory_format=torch.channels_last)
    return model.to(device)


def to_device(x: torch.Tensor, device: str) -> torch.Tensor:
    """A batch on ``device``: asynchronous from pinned memory and ``channels_last`` on CUDA."""
    if not device.startswith("cuda"):
        return x.to(device)
    if x.dim() == 4:
        return x.to(device, non_blocking=True, memory_format=torch.channels_last)
    return x.to(device, non_blocking=True)
