"""What the sidecar's processes load and how they allocate: the parts that decide its peak RSS."""

from __future__ import annotations

import subprocess
import sys

import pytest

from maxim_otel_bridge.sidecar.memory import tune_malloc


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_a_mapping_worker_loads_neither_the_spool_nor_the_metrics_nor_the_schema_validator() -> None:
    # A worker imports the mapper to unpickle its function: every module it pulls in is resident per worker.
    loaded = _modules_after_import("maxim_otel_bridge.sidecar.mapper")
    assert "maxim_otel_bridge.mapping" in loaded
    assert not loaded & {"maxim_otel_bridge.sidecar.spool", "sqlite3", "prometheus_client", "jsonschema"}


def test_the_schema_validator_is_loaded_on_first_validation() -> None:
    code = (
        "import sys; from maxim_otel_bridge.schema import PROVIDERS, validate_batch; "
        "before = 'jsonschema' in sys.modules; problems = validate_batch({'logs': []}); "
        "print(before, 'jsonschema' in sys.modules, len(problems))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["False", "True", "1"]  # the missing repoId


@pytest.mark.parametrize("name", ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"])
def test_allocator_settings_from_the_environment_are_left_alone(name: str) -> None:
    assert tune_malloc({name: "4"}) is False


def test_the_allocator_settings_apply_on_glibc_only() -> None:
    import platform

    on_glibc = platform.libc_ver()[0] == "glibc"
    # In a child: the settings are process-wide and this test process keeps running other tests.
    code = "from maxim_otel_bridge.sidecar.memory import tune_malloc; print(tune_malloc({}))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == str(on_glibc)
