"""The device selector (``--device``) and the precision choice (``--precision``) shared by every command."""

from __future__ import annotations

import contextlib
import os
from enum import Enum

import torch

from unetcli.errors import UsageError


class Precision(str, Enum):
    """``--precision`` choices: ``auto`` picks the fastest precision known to stay faithful on the device."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def select_device(spec: str = "auto") -> torch.device:
    """Resolve ``--device``: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises:
        UsageError: an unknown spelling, or CUDA (or device N) asked for where it is not available.
            There is never a silent fallback to the CPU when CUDA was asked for.
    """
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec}: CUDA is not available on this machine "
                             f"(torch {torch.__version__}); use --device cpu or auto")
        index = spec.partition(":")[2]
        if index:
            if not index.isdigit():
                raise UsageError(f"--device {spec}: expected cuda:N with N a number")
            if int(index) >= torch.cuda.device_count():
                raise UsageError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return torch.device(spec)
    raise UsageError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")


def cpu_has_fast_bf16() -> bool:
    """True if this CPU runs bf16 matmuls/convs natively (AMX tiles or AVX512-BF16).

    torch has no public query for this; ``torch.cpu._is_amx_tile_supported`` / ``_is_avx512_bf16_supported``
    are the checks oneDNN itself relies on, read defensively so a future rename only disables the fast path.
    """
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        fn = getattr(torch.cpu, probe, None)
        with contextlib.suppress(Exception):
            if fn is not None and fn():
                return True
    return False


def resolve_precision(precision: Precision | str, device: torch.device, auto_ok: bool = True) -> torch.dtype | None:
    """Turn ``--precision`` into the autocast dtype for ``device`` (``None`` means plain fp32).

    Args:
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        device: the device the model runs on.
        auto_ok: whether reduced precision is faithful enough for this model/use when ``auto`` is asked
            (callers pass False where measurements showed bf16 is not faithful, or where it gains nothing).

    Returns:
        ``torch.bfloat16`` / ``torch.float16`` for autocast, or ``None`` for fp32.
        ``auto`` gives bf16 on CPUs with native bf16 (AMX / AVX512-BF16), bf16 on CUDA devices that support it
        (else fp16), and fp32 otherwise.

    Raises:
        UsageError: fp16 asked for on the CPU (no fast fp16 kernels there), or bf16 on a CUDA device without it.
    """
    precision = Precision(precision)
    if precision is Precision.fp32:
        return None
    if precision is Precision.auto:
        if not auto_ok:
            return None
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    if precision is Precision.fp16:
        if device.type != "cuda":
            raise UsageError("--precision fp16 is for CUDA devices; on the CPU use bf16 or fp32")
        return torch.float16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16 support; use fp16")
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``device`` with ``dtype``, or a no-op context when ``dtype`` is None (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def precision_name(dtype: torch.dtype | None) -> str:
    """``None`` -> ``"fp32"``, ``torch.bfloat16`` -> ``"bf16"``, ``torch.float16`` -> ``"fp16"``."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity mask (``taskset``, a container's cpuset), else
    ``os.cpu_count()`` where the platform has no affinity call (macOS, Windows). A CPU quota (``docker --cpus``)
    is not seen."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe_environment() -> dict:
    """What ``unetcli env`` reports: versions, the CPU and its bf16 support, CUDA devices, torch's threads, and what
    ``--device auto`` / ``--precision auto`` pick here and why (for "is my GPU used?" questions).

    Returns:
        dict with ``unetcli``, ``python``, ``torch``, ``torch_cuda`` (the CUDA version torch was built with, or
        None for a CPU-only build), ``cpu`` (model, logical cores, cores this process may use, kernel capability,
        ``amx``, ``avx512_bf16``, ``fast_bf16``), ``threads`` (intra-op, inter-op, OMP_NUM_THREADS), ``cuda``
        (one dict per device: index, name, capability, memory_gib, bf16) and ``auto`` (``device``,
        ``device_reason``, ``precision``, ``precision_reason``, ``precision_note``).
    """
    import platform

    from unetcli import __version__

    model = None
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    model = value.strip()
                    break
    model = model or platform.processor() or platform.machine()

    def probe(name: str) -> bool | None:
        fn = getattr(torch.cpu, name, None)
        try:
            return bool(fn()) if fn is not None else None
        except Exception:  # a private torch probe: unknown rather than a crash
            return None

    capability = None  # the widest SIMD set ATen's CPU kernels use here (e.g. AVX2, AVX512)
    with contextlib.suppress(Exception):
        capability = torch.backends.cpu.get_cpu_capability()
    cpu = {"model": model, "logical_cores": os.cpu_count(), "usable_cores": usable_cores(),
           "capability": capability, "amx": probe("_is_amx_tile_supported"),
           "avx512_bf16": probe("_is_avx512_bf16_supported"), "fast_bf16": cpu_has_fast_bf16()}

    cuda = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            cuda.append({"index": i, "name": props.name, "capability": f"{props.major}.{props.minor}",
                         "memory_gib": round(props.total_memory / 2**30, 1),
                         "bf16": props.major >= 8})

    device = select_device("auto")
    if device.type == "cuda":
        device_reason = f"CUDA is available: {cuda[0]['name']} (cuda:0)" if cuda else "CUDA is available"
    elif torch.version.cuda is None:
        device_reason = f"torch {torch.__version__} is a CPU-only build: no CUDA device can be used"
    else:
        device_reason = (f"torch {torch.__version__} was built for CUDA {torch.version.cuda} but sees no CUDA device "
                         "(no GPU, no driver, or CUDA_VISIBLE_DEVICES hides it)")
    dtype = resolve_precision(Precision.auto, device)
    if device.type == "cuda":
        precision_reason = (f"{cuda[0]['name'] if cuda else 'the GPU'} "
                            + ("supports bf16" if dtype is torch.bfloat16 else "has no bf16 support: fp16 instead"))
    elif dtype is torch.bfloat16:
        features = " and ".join(n for n, ok in (("AMX", cpu["amx"]), ("AVX512-BF16", cpu["avx512_bf16"])) if ok)
        precision_reason = f"this CPU has {features or 'native bf16'}: bf16 matmuls and convolutions run natively"
    else:
        precision_reason = "this CPU has no AMX/AVX512-BF16, bf16 would be emulated and slower"
    auto = {"device": str(device), "device_reason": device_reason, "precision": precision_name(dtype),
            "precision_reason": precision_reason,
            "precision_note": "under auto, models whose outputs are not faithful in reduced precision, and "
                              "exported .onnx / .torchscript files, run in fp32"}
    return {
        "unetcli": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cpu": cpu,
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
        "cuda": cuda,
        "auto": auto,
    }
