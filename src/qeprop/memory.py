"""What this process may really allocate, and refusals before allocating more.

A computation whose peak memory exceeds what the process can get is refused *before* it allocates
(:class:`~qeprop.errors.ProblemTooLargeError`, one line, exit status 2 on the command line) instead
of ending in a ``MemoryError`` traceback or in the kernel's out-of-memory killer. The memory
available is the smallest of:

* ``MemAvailable`` of ``/proc/meminfo`` (what the machine can give now without swapping);
* the address-space limit (``ulimit -v``, ``RLIMIT_AS``) minus the address space already mapped
  (``VmSize``), and the data-segment limit (``RLIMIT_DATA``) minus ``VmData``;
* the cgroup limit (``memory.max`` of cgroup v2, ``memory.limit_in_bytes`` of v1) minus the
  cgroup's current usage;

times a safety factor of 0.9 for the interpreter and the libraries' own allocations. Where none of
these can be read (not Linux), 80 % of the physical memory is used.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from .errors import ProblemTooLargeError

__all__ = ["GiB", "available_memory", "check_memory", "format_bytes"]

GiB = float(1 << 30)

#: fraction of the available memory a computation may plan to use
SAFETY = 0.9


def format_bytes(nbytes: float) -> str:
    """``"3.2 GiB"`` / ``"512 MiB"``."""
    if nbytes >= GiB / 2:
        return f"{nbytes / GiB:.1f} GiB"
    return f"{nbytes / 2**20:.0f} MiB"


def _read_int(path: str | Path) -> int | None:
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _status_kib(field: str, text: str) -> int | None:
    for line in text.splitlines():
        if line.startswith(field + ":"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup memory limit (v2 or v1), if there is one."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        rel = rel.lstrip("/")
        if controllers == "":  # cgroup v2
            base = Path("/sys/fs/cgroup") / rel
            limit, used = _read_int(base / "memory.max"), _read_int(base / "memory.current")
        elif "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / rel
            if not base.exists():
                base = Path("/sys/fs/cgroup/memory")
            limit = _read_int(base / "memory.limit_in_bytes")
            used = _read_int(base / "memory.usage_in_bytes")
            if limit is not None and limit >= 1 << 60:  # v1 writes "no limit" as a huge number
                limit = None
        else:
            continue
        if limit is not None:
            rooms.append(limit - (used or 0))
    return min(rooms) if rooms else None


def available_memory() -> int:
    """Bytes this process may still allocate (see the module docstring); at least 0."""
    candidates: list[int] = []
    try:
        meminfo = Path("/proc/meminfo").read_text(encoding="ascii")
        avail = _status_kib("MemAvailable", meminfo)
        if avail is not None:
            candidates.append(avail)
    except OSError:
        pass
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        status = ""
    for limit_kind, field in ((resource.RLIMIT_AS, "VmSize"), (resource.RLIMIT_DATA, "VmData")):
        soft, _ = resource.getrlimit(limit_kind)
        if soft != resource.RLIM_INFINITY and soft > 0:
            candidates.append(soft - (_status_kib(field, status) or 0))
    room = _cgroup_room()
    if room is not None:
        candidates.append(room)
    if not candidates:  # pragma: no cover - non-Linux
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = 8 << 30
        return int(0.8 * total)
    return max(0, int(SAFETY * min(candidates)))


def check_memory(
    nbytes: float, what: str, budget: int | None = None, hint: str | None = None
) -> None:
    """Raise :class:`ProblemTooLargeError` if ``nbytes`` exceeds ``budget``.

    ``budget`` defaults to :func:`available_memory`; ``hint`` says what would fit instead.
    """
    limit = available_memory() if budget is None else budget
    if nbytes > limit:
        tail = hint or "use fewer qubits or a backend that stores less (state.method)"
        raise ProblemTooLargeError(
            f"{what} needs about {format_bytes(nbytes)}, more than the {format_bytes(limit)} "
            f"this process can allocate; {tail}"
        )
