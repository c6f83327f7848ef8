"""Wiring of the sidecar: receivers -> spool -> assembler -> shipper -> Maxim (or the embedded local store).

`Sidecar(settings).start()` builds and starts every part; `stop()` shuts down in the order that loses
nothing: refuse new spans (receivers answer UNAVAILABLE / 503), stop the receivers, ship what can be shipped
within the grace period, keep the rest in the spool, close.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from maxim_otel_bridge.client import ClientOptions, MaximClient
from maxim_otel_bridge.config import ENV_API_KEY, ENV_BASE_URL, LOCAL_REPO_ID, Destination, Secret
from maxim_otel_bridge.deadletter import DeadLetterFile
from maxim_otel_bridge.mapping import COMPILED, MappingOptions
from maxim_otel_bridge.retry import BackoffPolicy
from maxim_otel_bridge.sidecar.admin import AdminServer
from maxim_otel_bridge.sidecar.assembler import Assembler
from maxim_otel_bridge.sidecar.ingest import ReceiverLimits, TlsFiles
from maxim_otel_bridge.sidecar.mapper import InlineMapper, Mapper, MappingWorkerError, ProcessMapper
from maxim_otel_bridge.sidecar.metrics import BridgeMetrics
from maxim_otel_bridge.sidecar.settings import SidecarSettings
from maxim_otel_bridge.sidecar.shipper import DestinationGate, Shipper, TimedTransport
from maxim_otel_bridge.sidecar.spool import Spool

__all__ = ["LOCAL_STORE_DB", "Sidecar"]

logger = logging.getLogger(__name__)

LOCAL_STORE_DB = "local-store.sqlite3"
"""The embedded local store's database, next to the spool."""

RECEIVER_STOP_GRACE_S = 1.0
"""Requests in progress when the receivers stop get this long; new ones were already refused."""


class _Receiver(Protocol):
    @property
    def bound_port(self) -> int: ...

    def start(self) -> None: ...

    def stop(self, grace_s: float = ...) -> None: ...


class Sidecar:
    """One running sidecar. Not restartable: build a new one."""

    def __init__(self, settings: SidecarSettings, *, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._environ = os.environ if environ is None else environ
        self.metrics = BridgeMetrics()
        self.spool: Spool | None = None
        self.client: MaximClient | None = None
        self.shipper: Shipper | None = None
        self.assembler: Assembler | None = None
        self.gate = DestinationGate(BackoffPolicy(initial=1.0, maximum=settings.backoff_max))
        self.receivers: dict[str, _Receiver] = {}
        self.admin: AdminServer | None = None
        self.local_store: Any = None
        self.destination: Destination | None = None
        self._receivers_up = False

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start everything; raises ConfigError (bad settings) or OSError (a port or the spool unusable)."""
        s = self.settings
        self.spool = Spool(s.spool_path, max_bytes=s.spool_max_bytes, synchronous=s.spool_sync, metrics=self.metrics)
        self.destination = self._destination()
        self.client = MaximClient(
            self.destination,
            ClientOptions(
                max_batch_entities=s.batch_max_entities,
                max_batch_bytes=s.batch_max_bytes,
                timeout=s.send_timeout,
                retry_deadline=s.send_deadline,
                backoff=BackoffPolicy(initial=0.5, maximum=min(5.0, s.send_deadline)),
                dead_letter_path=str(s.dead_letter_file),
            ),
            transport=TimedTransport(self.metrics),
        )
        dead_letters = DeadLetterFile(s.dead_letter_file)
        options = MappingOptions(
            max_value_chars=s.max_value_chars,
            unknown_provider=s.unknown_provider,
            capture_content=s.capture_content,
            redact=s.redact,
        )
        mapper: Mapper = InlineMapper(options)
        if s.map_workers:
            process_mapper = ProcessMapper(options, workers=s.map_workers)
            try:
                process_mapper.warm_up()
            except MappingWorkerError as exc:
                logger.error("mapping worker processes did not start (%s): mapping in the shipping threads", exc)
                process_mapper.close()
            else:
                mapper = process_mapper
        self.assembler = Assembler(
            self.spool,
            wait_s=s.assembly_wait,
            max_spans=s.ship_max_spans,
            mapper=mapper,
            dead_letters=dead_letters,
            log_window_s=s.placement_retention,
        )
        self.shipper = Shipper(
            self.spool,
            self.assembler,
            self.client,
            self.gate,
            concurrency=s.ship_concurrency,
            send_deadline=s.send_deadline,
            placement_retention=s.placement_retention,
            metrics=self.metrics,
        )
        self.shipper.start()
        self._start_receivers()
        self.admin = AdminServer(
            s.admin_endpoint,
            readiness=self.readiness,
            render_metrics=self.metrics.render,
            before_metrics=self.spool.refresh_gauges,
        )
        self.admin.start()
        logger.info(
            "maxim-otel-bridge serving: OTLP/gRPC %s, OTLP/HTTP %s, admin %s, spool %s, shipping to %s (repo %s);"
            " mapping %s, %d worker process(es)",
            self._address(s.grpc_endpoint, self.receivers["grpc"].bound_port),
            self._address(s.http_endpoint, self.receivers["http"].bound_port),
            self._address(s.admin_endpoint, self.admin.bound_port),
            s.spool_dir,
            self.destination.base_url,
            self.destination.repo_id,
            "compiled" if COMPILED else "in Python",
            len(mapper.worker_pids()) if isinstance(mapper, ProcessMapper) else 0,
        )
        if not s.capture_content or s.redact:
            # How many patterns, never which: a pattern may spell out the secret it hides.
            logger.info(
                "content policy: message content %s, %d redaction pattern(s)",
                "captured" if s.capture_content else "not captured",
                len(s.redact),
            )

    def stop(self) -> bool:
        """Graceful stop within `grace_period`. True when the spool was emptied, False when spans stay for later."""
        started = time.monotonic()
        grace = self.settings.grace_period
        if self.spool is not None:
            self.spool.close_intake()
        for name, receiver in self.receivers.items():
            try:
                receiver.stop(min(RECEIVER_STOP_GRACE_S, grace))
            except Exception:
                logger.exception("stopping the %s receiver failed", name)
        self._receivers_up = False
        emptied = True
        if self.shipper is not None:
            budget = max(0.0, grace - (time.monotonic() - started) - 0.5)
            emptied = self.shipper.drain(budget)
        if self.assembler is not None:
            self.assembler.close()
        if self.spool is not None:
            left = self.spool.stats()
            self.spool.close()
            if left.spans:
                logger.info("%d spans of %d traces stay in the spool for the next start", left.spans, left.traces)
        if self.client is not None:
            self.client.close()
        if self.local_store is not None:
            self.local_store.stop()
        if self.admin is not None:
            self.admin.stop()
        logger.info("maxim-otel-bridge stopped after %.1fs", time.monotonic() - started)
        return emptied

    # -- parts -------------------------------------------------------------------------------------------

    def _destination(self) -> Destination:
        env = self._environ
        if not env.get(ENV_API_KEY) and not env.get(ENV_BASE_URL):
            return self._start_local_store()
        return Destination.resolve(environ=env)

    def _start_local_store(self) -> Destination:
        from maxim_otel_bridge.emulator import EmulatorServer

        host, _, port = self.settings.local_store_endpoint.rpartition(":")
        db_path = Path(self.settings.spool_dir) / LOCAL_STORE_DB
        self.local_store = EmulatorServer(db_path=str(db_path), host=host, port=int(port), api_key="local")
        self.local_store.start()
        url = str(self.local_store.url).rstrip("/")
        logger.warning(
            "%s is not set: spans are delivered to the embedded local store at %s (database %s), NOT to Maxim. "
            "Set %s and MAXIM_LOG_REPO_ID to ship to Maxim.",
            ENV_API_KEY,
            url,
            db_path,
            ENV_API_KEY,
        )
        return Destination(base_url=url, api_key=Secret("local"), repo_id=LOCAL_REPO_ID)

    def _start_receivers(self) -> None:
        from maxim_otel_bridge.sidecar.grpc_receiver import GrpcReceiver
        from maxim_otel_bridge.sidecar.http_receiver import HttpReceiver

        s = self.settings
        tls = TlsFiles(Path(s.tls_cert), Path(s.tls_key)) if s.tls_cert and s.tls_key else None
        token = s.auth_token if s.auth_token else None
        self.receivers["grpc"] = GrpcReceiver(
            s.grpc_endpoint,
            self.spool,
            ReceiverLimits(max_request_bytes=s.grpc_max_request_bytes),
            token,
            tls,
            self.metrics,
            log_sink=self.spool,
        )
        self.receivers["http"] = HttpReceiver(
            s.http_endpoint,
            self.spool,
            ReceiverLimits(max_request_bytes=s.http_max_request_bytes),
            token,
            tls,
            self.metrics,
            log_sink=self.spool,
        )
        for receiver in self.receivers.values():
            receiver.start()
        self._receivers_up = True

    @staticmethod
    def _address(endpoint: str, port: int) -> str:
        return f"{endpoint.rpartition(':')[0]}:{port}"

    # -- state -------------------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, /readyz body). Not ready: receivers down, spool not writable, or Maxim refused the API key."""
        reasons: list[str] = []
        receivers = {name: ("up" if self._receivers_up else "down") for name in ("grpc", "http")}
        if not self._receivers_up:
            reasons.append("receivers are not running")
        spool: dict[str, Any] = {"dir": self.settings.spool_dir, "max_bytes": self.settings.spool_max_bytes}
        if self.spool is None or not self.spool.writable:
            reasons.append("the spool cannot be written")
            spool["writable"] = False
        else:
            stats = self.spool.stats()
            spool.update(
                writable=True,
                spans=stats.spans,
                log_records=stats.log_events,
                traces=stats.traces,
                bytes=stats.bytes,
                oldest_span_age_s=round(stats.oldest_age_s, 3),
                full=stats.bytes >= self.settings.spool_max_bytes,
            )
        status = self.gate.status()
        destination: dict[str, Any] = {
            "url": self.destination.base_url if self.destination else None,
            "repo_id": self.destination.repo_id if self.destination else None,
            "embedded_local_store": self.local_store is not None,
            "status": status.state,
            "consecutive_failures": status.consecutive_failures,
            "retry_in_s": round(status.retry_in_s, 3),
            "last_error": status.last_error,
        }
        if status.state == "auth_failed":
            reasons.append("Maxim refused the API key: check MAXIM_API_KEY and MAXIM_LOG_REPO_ID")
        body = {"reasons": reasons, "receivers": receivers, "spool": spool, "destination": destination}
        return not reasons, body
