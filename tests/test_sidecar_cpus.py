"""`map_workers: auto`: the usable CPUs (affinity bounded by the cgroup quota) decide the number of mapping workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from maxim_otel_bridge.sidecar import settings as settings_module
from maxim_otel_bridge.sidecar.cpus import auto_map_workers, cgroup_cpu_limit, usable_cpus
from maxim_otel_bridge.sidecar.settings import load_settings


def cgroup_v2(root: Path, cpu_max: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.max").write_text(cpu_max + "\n")
    return root


def cgroup_v1(root: Path, quota: str, period: str) -> Path:
    (root / "cpu").mkdir(parents=True, exist_ok=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(quota + "\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text(period + "\n")
    return root


@pytest.mark.parametrize(
    ("make", "limit"),
    [
        (lambda root: cgroup_v2(root, "max 100000"), None),
        (lambda root: cgroup_v2(root, "150000 100000"), 1.5),
        (lambda root: cgroup_v2(root, "50000 100000"), 0.5),
        (lambda root: cgroup_v1(root, "-1", "100000"), None),
        (lambda root: cgroup_v1(root, "200000", "100000"), 2.0),
        (lambda root: cgroup_v2(root, "garbage"), None),
        (lambda root: root, None),  # no cgroup files at all
    ],
)
def test_the_cgroup_quota_in_cpus(tmp_path: Path, make, limit: float | None) -> None:
    assert cgroup_cpu_limit(make(tmp_path / "cg")) == limit


def test_usable_cpus_is_the_affinity_bounded_by_the_quota_rounded_up(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path / "none") == affinity
    assert usable_cpus(cgroup_v2(tmp_path / "half", "50000 100000")) == 1
    assert usable_cpus(cgroup_v2(tmp_path / "many", f"{(affinity + 3) * 100000} 100000")) == affinity
    if affinity >= 2:
        assert usable_cpus(cgroup_v2(tmp_path / "one-and-a-half", "150000 100000")) == 2


@pytest.mark.parametrize(("cpus", "workers"), [(1, 0), (2, 2), (3, 2), (64, 2)])
def test_auto_starts_no_worker_on_one_cpu_and_at_most_two(cpus: int, workers: int) -> None:
    assert auto_map_workers(cpus) == workers


def test_auto_is_the_default_and_resolved_when_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "usable_cpus", lambda: 1)
    assert load_settings({}, environ={}).map_workers == 0
    monkeypatch.setattr(settings_module, "usable_cpus", lambda: 4)
    loaded = load_settings({}, environ={})
    assert loaded.map_workers == 2 and loaded.sources["map_workers"] == "default"
    assert load_settings({}, environ={"MAXIM_BRIDGE_MAP_WORKERS": " Auto "}).map_workers == 2
    assert load_settings({}, environ={"MAXIM_BRIDGE_MAP_WORKERS": "3"}).map_workers == 3
    assert load_settings({"map_workers": 0}, environ={}).map_workers == 0
