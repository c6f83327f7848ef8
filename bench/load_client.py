"""OTLP/gRPC load generator, run as its own process: replays pre-encoded requests at the sidecar.

    python bench/load_client.py <requests.pickle> <host:port> max  <seconds> [concurrency]
    python bench/load_client.py <requests.pickle> <host:port> rate <seconds> <spans_per_s>

The pickle holds the span set's `EncodedRequest`s. Each pass over them is a new round whose trace and span
ids are relabeled (`spanset.relabel`), so the sidecar sees new traces, never duplicates. The bytes go out
as they are (no serializer): the client spends its CPU on sending, not on encoding.

Both modes run whole rounds: they stop at the first round boundary after `seconds`.

- `max`: closed loop, `concurrency` requests in flight, for `seconds`. A request refused with UNAVAILABLE
  or RESOURCE_EXHAUSTED (the sidecar's backpressure) is retried after a short pause, as an OTLP exporter does.
- `rate`: open loop at `spans_per_s`, for `seconds`. A refused request is counted and not retried (at a fixed
  offered load, a client that falls behind sheds, it does not queue without bound).

Prints one JSON object: requests, spans sent and accepted, refusals, failures, start/end (monotonic), and
`roots`: trace id (hex) -> monotonic time its root span was sent, for latency.
"""

from __future__ import annotations

import json
import pickle
import sys
import threading
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))

from spanset import EncodedRequest, relabel, trace_id_hex

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
BACKPRESSURE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
RETRY_PAUSE_S = 0.05
CALL_TIMEOUT_S = 30.0
MAX_MESSAGE = 64 * 1024 * 1024


class Load:
    def __init__(self, requests: list[EncodedRequest], endpoint: str) -> None:
        self.requests = requests
        self.channel = grpc.insecure_channel(
            endpoint,
            options=[("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.max_receive_message_length", MAX_MESSAGE)],
        )
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.export = self.channel.unary_unary(EXPORT_METHOD)  # bytes in, bytes out
        self.lock = threading.Lock()
        self.next_index = 0
        self.sent_requests = 0
        self.accepted_spans = 0
        self.refused = 0
        self.failures = 0
        self.errors: list[str] = []
        self.roots: dict[str, float] = {}

    def take(self, end: float) -> tuple[int, EncodedRequest] | None:
        """The next (round, request); None once `end` has passed and the current round is complete (a
        round cut short would leave traces without their root, which the sidecar rightly holds back)."""
        with self.lock:
            index = self.next_index
            if index % len(self.requests) == 0 and time.monotonic() >= end:
                return None
            self.next_index += 1
        return index // len(self.requests), self.requests[index % len(self.requests)]

    def send(self, round_no: int, request: EncodedRequest, retry_until: float | None) -> None:
        data = relabel(request.data, round_no)
        while True:
            sent_at = time.monotonic()
            try:
                self.export(data, timeout=CALL_TIMEOUT_S)
            except grpc.RpcError as exc:
                code = exc.code()
                if code in BACKPRESSURE:
                    if retry_until is not None and time.monotonic() < retry_until:
                        time.sleep(RETRY_PAUSE_S)
                        continue
                    with self.lock:
                        self.refused += 1
                    return
                with self.lock:
                    self.failures += 1
                    if len(self.errors) < 5:
                        self.errors.append(f"{code.name}: {exc.details()}")
                return
            with self.lock:
                self.sent_requests += 1
                self.accepted_spans += request.spans
                for trace in request.roots:
                    self.roots[trace_id_hex(round_no, trace)] = sent_at
            return

    def run_max(self, seconds: float, concurrency: int) -> None:
        end = time.monotonic() + seconds

        def worker() -> None:
            while (taken := self.take(end)) is not None:
                # Backpressure is waited out even past the end: the round must be complete.
                self.send(*taken, retry_until=time.monotonic() + CALL_TIMEOUT_S)

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def run_rate(self, seconds: float, spans_per_s: float) -> None:
        start = time.monotonic()
        end = start + seconds
        scheduled_spans = 0
        in_flight = threading.BoundedSemaphore(64)
        threads: list[threading.Thread] = []
        while True:
            pause = start + scheduled_spans / spans_per_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            taken = self.take(end)
            if taken is None:
                break
            round_no, request = taken
            scheduled_spans += request.spans
            in_flight.acquire()

            def one(r: int = round_no, q: EncodedRequest = request) -> None:
                try:
                    self.send(r, q, retry_until=None)
                finally:
                    in_flight.release()

            thread = threading.Thread(target=one)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()


def main() -> None:
    path, endpoint, mode, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    with open(path, "rb") as handle:
        requests: list[EncodedRequest] = pickle.load(handle)
    load = Load(requests, endpoint)
    started = time.monotonic()
    if mode == "max":
        load.run_max(seconds, int(sys.argv[5]) if len(sys.argv) > 5 else 4)
    elif mode == "rate":
        load.run_rate(seconds, float(sys.argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    finished = time.monotonic()
    load.channel.close()
    print(
        json.dumps(
            {
                "requests": load.sent_requests,
                "spans": load.accepted_spans,
                "refused": load.refused,
                "failures": load.failures,
                "errors": load.errors,
                "started": started,
                "finished": finished,
                "cpu_s": time.process_time(),
                "roots": load.roots,
            }
        )
    )


if __name__ == "__main__":
    main()
