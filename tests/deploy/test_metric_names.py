"""Every metric a dashboard or an alert uses is one the services declare (core/metrics/)."""

from __future__ import annotations

import pytest

from tests.deploy.declared import declared_metrics, exported_series
from tests.deploy.promql import all_expressions, metric_names


def test_metrics_py_parses_into_known_metrics():
    declared = declared_metrics()
    # a few anchors: if these move, the parser (or the metric contract) broke
    assert declared["driftloop_inference_requests_total"] == "Counter"
    assert declared["driftloop_inference_request_duration_seconds"] == "Histogram"
    assert declared["driftloop_monitor_consumer_lag"] == "Gauge"
    assert declared["driftloop_retrainer_runs_total"] == "Counter"
    series = exported_series()
    assert "driftloop_inference_request_duration_seconds_bucket" in series
    assert "driftloop_inference_engine_info" in series
    assert "driftloop_inference_request_duration_seconds" not in series  # histograms only by suffix


def test_there_are_expressions_of_every_kind():
    kinds = {e.kind for e in all_expressions()}
    assert {"alert", "panel", "annotation", "variable"} <= kinds


@pytest.mark.parametrize("expr", all_expressions(), ids=lambda e: f"{e.source}:{e.name}")
def test_every_metric_used_is_declared(expr):
    unknown = metric_names(expr.expr) - exported_series()
    assert not unknown, f"{expr.source} ({expr.name}) uses undeclared metrics {sorted(unknown)}"


@pytest.mark.parametrize("expr", all_expressions(), ids=lambda e: f"{e.source}:{e.name}")
def test_every_expression_uses_a_driftloop_metric(expr):
    assert metric_names(expr.expr), f"{expr.source} ({expr.name}) queries no driftloop_ metric: {expr.expr}"
