"""`maxim-otel-bridge serve` in a child process, configured the way a user would, for the benchmarks.

Settings come from the environment only (`MAXIM_BRIDGE_*`, `MAXIM_*`): free loopback ports, a fresh spool
directory, the counting sink as the destination. Everything else keeps its default (durable spool with
`synchronous=full`, assembly wait, batch sizes, shipping concurrency), so what is measured is what ships.
Memory and CPU are counted over the sidecar's whole process tree (it may map in worker processes).
Optionally runs under `py-spy record` to find where the time goes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SidecarProcess", "free_port", "read_status_kb"]

READY_TIMEOUT_S = 60.0
RSS_SAMPLE_S = 0.1


def free_port() -> int:
    """A port the OS just handed out (released at once: a tiny race, acceptable outside tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_status_kb(pid: int, field: str) -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS: resident now; VmHWM: the peak resident set since start)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class SidecarProcess:
    """One sidecar process. `start()` returns once /readyz answers 200; `stop()` sends SIGTERM and waits."""

    def __init__(
        self,
        workdir: Path,
        destination_url: str,
        *,
        settings: Mapping[str, str] | None = None,
        profile_path: Path | None = None,
        profile_rate: int = 100,
        extra_profile_args: tuple[str, ...] = ("--nonblocking",),
    ) -> None:
        self.workdir = workdir
        self.destination_url = destination_url
        self.settings = dict(settings or {})
        self.profile_path = profile_path
        self.profile_rate = profile_rate
        self.extra_profile_args = extra_profile_args
        self.grpc_endpoint = ""
        self.admin_url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None
        self.pid = 0
        self._sampled_peak_kb = 0
        self._sampling_done = threading.Event()
        self._sampler: threading.Thread | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "sidecar.log"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        grpc_port, http_port, admin_port = free_port(), free_port(), free_port()
        self.grpc_endpoint = f"127.0.0.1:{grpc_port}"
        self.admin_url = f"http://127.0.0.1:{admin_port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MAXIM_", "OTEL_"))}
        env.update(
            {
                "MAXIM_API_KEY": "bench-key",
                "MAXIM_LOG_REPO_ID": "bench-repo",
                "MAXIM_BASE_URL": self.destination_url,
                "MAXIM_BRIDGE_GRPC_ENDPOINT": self.grpc_endpoint,
                "MAXIM_BRIDGE_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
                "MAXIM_BRIDGE_ADMIN_ENDPOINT": f"127.0.0.1:{admin_port}",
                "MAXIM_BRIDGE_SPOOL_DIR": str(self.workdir / "spool"),
                "MAXIM_BRIDGE_DEAD_LETTER_PATH": str(self.workdir / "dead-letter.jsonl"),
                **self.settings,
            }
        )
        command = [sys.executable, "-m", "maxim_otel_bridge", "serve"]
        if self.profile_path is not None:
            spy = Path(sys.executable).with_name("py-spy")
            command = [
                str(spy),
                "record",
                "-r",
                str(self.profile_rate),
                "-f",
                "raw",
                "-o",
                str(self.profile_path),
                *self.extra_profile_args,
                "--",
                *command,
            ]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self._process.pid if self.profile_path is None else self._find_child(self._process.pid)
        self._wait_ready()
        self._sampler = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._sampler.start()

    def _find_child(self, parent: int) -> int:
        end = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < end:
            for task in Path(f"/proc/{parent}/task").iterdir():
                children = (task / "children").read_text().split()
                if children:
                    return int(children[0])
            time.sleep(0.05)
        raise RuntimeError("py-spy did not start the sidecar")

    def _wait_ready(self) -> None:
        end = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < end:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"sidecar exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.admin_url + "/readyz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"sidecar not ready after {READY_TIMEOUT_S}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.admin_url + "/metrics", timeout=10) as response:
            return response.read().decode()

    def tree(self) -> list[int]:
        """The sidecar's pid and its descendants' (mapping workers), those alive now."""
        pids = [self.pid]
        for pid in pids:
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pids.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue  # exited meanwhile
        return pids

    def _tree_sum_kb(self, field: str) -> int:
        total = 0
        for pid in self.tree():
            try:
                total += read_status_kb(pid, field)
            except (OSError, KeyError):
                continue
        return total

    def rss_mb(self) -> float:
        """Resident memory of the sidecar's whole process tree now."""
        return self._tree_sum_kb("VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        """Peak resident memory of the process tree: the larger of the sampled peak of the tree's sum and the
        sum of each live process's own peak (VmHWM; an upper bound that no short spike escapes)."""
        return max(self._sampled_peak_kb, self._tree_sum_kb("VmHWM")) / 1024

    def _sample(self) -> None:
        while not self._sampling_done.wait(RSS_SAMPLE_S):
            self._sampled_peak_kb = max(self._sampled_peak_kb, self._tree_sum_kb("VmRSS"))

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far by the sidecar's process tree (all threads, and children
        that already exited)."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for index, pid in enumerate(self.tree()):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # utime, stime (+ cutime, cstime of reaped children, counted once: at the top process).
            total += int(fields[11]) + int(fields[12])
            if index == 0:
                total += int(fields[13]) + int(fields[14])
        return total / ticks

    def stop(self, timeout: float = 60.0) -> int | None:
        if self._process is None:
            return None
        self._sampling_done.set()
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            code = self._process.wait(timeout=10)
        self._process = None
        if self._log is not None:
            self._log.close()
        return code

    def __enter__(self) -> SidecarProcess:  # noqa: PYI034 - not subclassed
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
