"""How many CPUs the sidecar can use, and so how many mapping workers `map_workers: auto` starts.

A container usually gets its CPU share as a cgroup quota, not as fewer CPUs: `os.cpu_count()` and the affinity
mask still show every core of the host. The usable count is the affinity mask bounded by the quota (cgroup v2
`cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded up.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["AUTO_MAX_WORKERS", "CGROUP_ROOT", "auto_map_workers", "cgroup_cpu_limit", "usable_cpus"]

CGROUP_ROOT = Path("/sys/fs/cgroup")

AUTO_MAX_WORKERS = 2
"""Workers `auto` starts at most: each holds about 35 MB, and two keep the sidecar within a 200 MB budget."""


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of the cgroup mounted at `root`, in CPUs (1.5 for 150 ms per 100 ms); None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # v2: "max 100000" or "150000 100000"
        if quota == "max":
            return None
        return _ratio(quota, period)
    except (OSError, ValueError):
        pass
    try:
        quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()  # v1: -1 when unlimited
        period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        return _ratio(quota, period)
    except (OSError, ValueError):
        return None


def _ratio(quota: str, period: str) -> float | None:
    q, p = int(quota), int(period)
    return q / p if q > 0 and p > 0 else None


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may run on, bounded by its cgroup's quota (at least 1)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        count = min(count, math.ceil(limit))
    return max(count, 1)


def auto_map_workers(cpus: int) -> int:
    """No worker on one CPU (moving batches to another process costs CPU and gains nothing); else one per CPU,
    up to `AUTO_MAX_WORKERS`."""
    return 0 if cpus < 2 else min(cpus, AUTO_MAX_WORKERS)
