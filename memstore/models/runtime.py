"""Where and in which precision the base model runs: device, dtype, and a device map.

Chosen per command (`--device`, `--dtype`, `--device-map`), else from the environment
(MEMSTORE_DEVICE, MEMSTORE_DTYPE, MEMSTORE_DEVICE_MAP), else from the repository
(`memstore config device cuda`), else CPU and float32. The model's weights are held in the
dtype; z-vector optimisation state stays float32 on the model's device, the solve runs in
float64 (on the model's device where it has float64, else on the CPU), and the stored
factors are float32 whatever the dtype.

A rebuild is bit-identical to another made on the same device type with the same dtype;
other combinations give the same weights up to rounding (README, "Devices and precision")."""
from __future__ import annotations

import os
import re
from dataclasses import InitVar, dataclass, replace
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError

if TYPE_CHECKING:  # torch is imported where a device or dtype is used, not to read a choice
    import torch

DTYPES = ("float32", "bfloat16", "float16")  # torch's names for them
DEVICE = re.compile(r"cpu|cuda|cuda:\d+|mps|auto")  # fullmatch: no trailing newline
DEVICE_MAPS = ("auto", "balanced", "sequential")
KEYS = ("device", "dtype", "device_map")
ENV = {"device": "MEMSTORE_DEVICE", "dtype": "MEMSTORE_DTYPE", "device_map": "MEMSTORE_DEVICE_MAP"}


@dataclass(frozen=True)
class Runtime:
    device: str = "cpu"
    dtype: str = "float32"
    device_map: str | None = None  # accelerate's big-model placement ("auto", …) or a JSON file
    check_available: InitVar[bool] = True  # False: check the form only (a stored choice)

    def __post_init__(self, check_available: bool) -> None:
        check(self, check_available)

    @property
    def torch_dtype(self) -> torch.dtype:
        import torch

        return getattr(torch, self.dtype)

    def resolved_device(self) -> str:
        """`auto` made concrete: CUDA, else Apple's MPS, else the CPU."""
        if self.device != "auto":
            return self.device
        import torch

        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "dtype": self.dtype, "device_map": self.device_map}


def check(rt: Runtime, available: bool = True) -> None:
    if not isinstance(rt.device, str) or not DEVICE.fullmatch(rt.device):
        raise ValidationError(f"unknown device {rt.device!r}; give cpu, cuda, cuda:N, mps or auto")
    if rt.dtype not in DTYPES:
        raise ValidationError(f"unknown dtype {rt.dtype!r}; choose from {', '.join(DTYPES)}")
    if rt.device_map is not None and rt.device_map not in DEVICE_MAPS \
            and not str(rt.device_map).endswith(".json"):
        raise ValidationError(f"unknown device map {rt.device_map!r}; give "
                              f"{', '.join(DEVICE_MAPS)} or a .json file of module -> device")
    if not available:
        return
    check_present(rt.resolved_device(), f"device {rt.device!r}")


def check_present(device: str, what: str) -> None:
    """`device` (cpu, cuda, cuda:N, mps) is one this machine has; `what` names it."""
    if device == "cpu":
        return
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValidationError(f"{what}: no CUDA device is available here")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValidationError(f"{what}: this machine has "
                                  f"{torch.cuda.device_count()} CUDA device(s)")
    elif device == "mps":
        if not (getattr(torch.backends, "mps", None) is not None
                and torch.backends.mps.is_available()):
            raise ValidationError(f"{what}: Apple's MPS is not available here")
    elif device != "cpu":
        raise ValidationError(f"{what}: not a device this machine has")


def resolve(flags: dict[str, str | None] | None = None,
            stored: dict[str, Any] | None = None) -> Runtime:
    """The runtime from command-line `flags` (None: not given), else the environment, else
    the repository's `stored` choice, else the defaults."""
    values: dict[str, Any] = {}
    for key in KEYS:
        for source in ((flags or {}).get(key), os.environ.get(ENV[key]) or None,
                       (stored or {}).get(key)):
            if source is not None:
                values[key] = source
                break
    return Runtime(**values)


def with_changes(rt: Runtime, **changes: Any) -> Runtime:
    return replace(rt, **changes)


def float64_device(device: torch.device) -> torch.device:
    """Where a float64 solve runs: the model's device when it has float64 (CUDA, CPU), else
    the CPU (Apple's MPS has none)."""
    import torch

    return device if device.type in ("cpu", "cuda") else torch.device("cpu")
