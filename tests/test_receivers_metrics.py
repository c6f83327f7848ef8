"""BridgeMetrics: its own registry, fixed label sets, and the exposition format served on /metrics."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from maxim_otel_bridge.sidecar.metrics import BridgeMetrics


def samples(metrics: BridgeMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = metrics.render()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_each_instance_has_its_own_registry() -> None:
    first, second = BridgeMetrics(), BridgeMetrics()
    first.spans_accepted("grpc", 5)
    assert (
        first.registry.get_sample_value("maxim_bridge_receiver_accepted_spans_total", {"receiver": "grpc"})
        == 5
    )
    assert (
        second.registry.get_sample_value("maxim_bridge_receiver_accepted_spans_total", {"receiver": "grpc"})
        is None
    )


def test_render_is_prometheus_text_with_collector_style_names() -> None:
    metrics = BridgeMetrics()
    metrics.spans_accepted("http", 3)
    metrics.spans_refused("grpc", "overloaded", 2)
    metrics.request_handled("http", "logs", "too_large")
    metrics.spool_spooled_spans.inc(3)
    metrics.exporter_sent_spans.inc(2)
    metrics.exporter_send_failed_spans.inc(1)
    metrics.exporter_dead_lettered_spans.inc(1)
    metrics.spool_bytes.set(4096)
    metrics.spool_oldest_span_age_seconds.set(1.5)
    metrics.maxim_request_finished("success", 0.2)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    got = samples(metrics)
    assert got[("maxim_bridge_receiver_accepted_spans_total", (("receiver", "http"),))] == 3
    assert (
        got[("maxim_bridge_receiver_refused_spans_total", (("reason", "overloaded"), ("receiver", "grpc")))]
        == 2
    )
    assert (
        got[
            (
                "maxim_bridge_receiver_requests_total",
                (("outcome", "too_large"), ("receiver", "http"), ("signal", "logs")),
            )
        ]
        == 1
    )
    assert got[("maxim_bridge_spool_spooled_spans_total", ())] == 3
    assert got[("maxim_bridge_exporter_sent_spans_total", ())] == 2
    assert got[("maxim_bridge_exporter_send_failed_spans_total", ())] == 1
    assert got[("maxim_bridge_exporter_dead_lettered_spans_total", ())] == 1
    assert got[("maxim_bridge_spool_bytes", ())] == 4096
    assert got[("maxim_bridge_spool_oldest_span_age_seconds", ())] == 1.5
    assert got[("maxim_bridge_exporter_request_duration_seconds_count", (("outcome", "success"),))] == 1
    assert (
        got[
            (
                "maxim_bridge_exporter_request_duration_seconds_bucket",
                (("le", "0.25"), ("outcome", "success")),
            )
        ]
        == 1
    )
    assert b"# HELP maxim_bridge_receiver_accepted_spans_total" in body


def test_zero_counts_create_no_series() -> None:
    metrics = BridgeMetrics()
    metrics.spans_accepted("grpc", 0)
    metrics.spans_refused("grpc", "invalid", 0)
    assert (
        metrics.registry.get_sample_value("maxim_bridge_receiver_accepted_spans_total", {"receiver": "grpc"})
        is None
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.request_handled("grpc", "traces", "sk-live-api-key"),
        lambda m: m.request_handled("kafka", "traces", "ok"),
        lambda m: m.request_handled("http", "sk-live-api-key", "ok"),
        lambda m: m.spans_refused("http", "Bearer abc", 1),
        lambda m: m.spans_accepted("sk-live-api-key", 1),
        lambda m: m.maxim_request_finished("x-maxim-api-key", 0.1),
    ],
)
def test_label_values_outside_the_fixed_sets_are_refused(call: object) -> None:
    metrics = BridgeMetrics()
    with pytest.raises(ValueError, match="unknown .* label value") as caught:
        call(metrics)  # type: ignore[operator]
    assert "key" not in str(caught.value)
    assert "Bearer" not in str(caught.value)
    assert b"api-key" not in metrics.render()[0]
