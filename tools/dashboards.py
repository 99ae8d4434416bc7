#!/usr/bin/env python3
"""Writes the Grafana dashboards in deploy/grafana/dashboards/ (`make dashboards`).

The JSON files are generated, committed, and checked: tests/deploy fails when this script would
write something else, when an expression uses a metric that services/driftloop/core/metrics/ does
not declare, or when an expression does not parse. Edit the panels here, not in the JSON.

- driftloop-overview.json: the on-call overview (traffic, errors, latency, feedback, drift against
  thresholds, adapter versions and rollouts, retraining, lag and the event pipeline);
- driftloop-adapter.json: a drill-down for one adapter alias (template variable ``adapter_alias``).

Both take a ``datasource`` variable (any Prometheus data source) so they import anywhere; the Helm
chart ships them as ConfigMaps for the Grafana sidecar and docker/compose.yaml provisions them.
Standard library only, plus the monitor's signal names (driftloop.monitor.signals).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from driftloop.monitor.signals import DRIFT_SIGNALS, RATE_SIGNALS

OUT = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}

# Server-side gRPC codes (caller mistakes excluded): the same set as the DriftloopErrorRateHigh alert.
SERVER_ERRORS = 'code=~"INTERNAL|UNAVAILABLE|UNKNOWN|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|DATA_LOSS|ABORTED"'
DRIFT_DETECTORS = DRIFT_SIGNALS  # the monitor's own names (monitor/signals.py), never a copy
RATE_UNITS = {"negative_feedback_rate": "percentunit", "error_rate": "percentunit", "latency_p95": "s"}
RATE_DETECTORS = tuple((name, RATE_UNITS[name]) for name in RATE_SIGNALS)  # a new rate signal needs a unit


class Layout:
    """Hands out gridPos left to right, top to bottom, on Grafana's 24-column grid, and panel ids."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1
        self.panels: list[dict] = []

    def add(self, panel: dict, w: int = 8, h: int = 8) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["id"] = self.next_id
        panel["gridPos"] = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.next_id += 1
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)

    def row(self, title: str) -> None:
        self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.add({"type": "row", "title": title, "collapsed": False, "panels": []}, w=24, h=1)


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False, table: bool = False) -> dict:
    t = {"datasource": DS, "refId": ref, "expr": expr, "legendFormat": legend or "__auto",
         "range": not instant, "instant": instant}
    if table:
        t["format"] = "table"
    return t


def targets(*pairs: tuple[str, str]) -> list[dict]:
    return [target(expr, legend, ref=chr(ord("A") + i)) for i, (expr, legend) in enumerate(pairs)]


def thresholds(*steps: tuple[float | None, str]) -> dict:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def timeseries(title: str, tgts: list[dict], unit: str = "short", desc: str = "", threshold: float | None = None,
               log: bool = False, stack: bool = False, dashed: tuple[str, ...] = ()) -> dict:
    """A time series panel. ``threshold`` draws a red dashed line; series whose legend matches a name
    in ``dashed`` are drawn dashed (thresholds exported as metrics)."""
    custom: dict = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
                    "showPoints": "never", "spanNulls": False,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    if log:
        custom["scaleDistribution"] = {"type": "log", "log": 10}
    defaults: dict = {"unit": unit, "custom": custom}
    if threshold is not None:
        custom["thresholdsStyle"] = {"mode": "dashed"}
        defaults["thresholds"] = thresholds((None, "green"), (threshold, "red"))
    overrides = [
        {"matcher": {"id": "byRegexp", "options": f".*{name}.*"},
         "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}]}
        for name in dashed
    ]
    return {"type": "timeseries", "title": title, "description": desc, "datasource": DS, "targets": tgts,
            "fieldConfig": {"defaults": defaults, "overrides": overrides},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, tgts: list[dict], unit: str = "short", desc: str = "",
         steps: tuple[tuple[float | None, str], ...] = ((None, "green"),)) -> dict:
    return {"type": "stat", "title": title, "description": desc, "datasource": DS, "targets": tgts,
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": thresholds(*steps),
                                         "color": {"mode": "thresholds"}}, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "background", "graphMode": "area", "textMode": "auto", "justifyMode": "auto"}}


def table(title: str, expr: str, desc: str = "", hide: tuple[str, ...] = (), rename: dict | None = None) -> dict:
    """An instant-query table of the series' labels (``hide`` drops columns)."""
    excluded = {name: True for name in ("Time", "__name__", "job", "endpoint", "service", "namespace", "container",
                                        *hide)}
    return {"type": "table", "title": title, "description": desc, "datasource": DS,
            "targets": [target(expr, instant=True, table=True)],
            "transformations": [{"id": "organize", "options": {"excludeByName": excluded,
                                                                "renameByName": rename or {}}}],
            "fieldConfig": {"defaults": {}, "overrides": []},
            "options": {"showHeader": True, "cellHeight": "sm"}}


def quantiles(metric: str, by: str, selector: str = "", qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[dict]:
    sel = f"{{{selector}}}" if selector else ""
    return targets(*(
        (f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{sel}[$__rate_interval])))",
         f"p{int(q * 100)} {{{{{by}}}}}")
        for q in qs
    ))


def datasource_var() -> dict:
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}


def query_var(name: str, label: str, metric: str, multi: bool = False) -> dict:
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "definition": f"label_values({metric}, {name})",
            "query": {"query": f"label_values({metric}, {name})", "refId": f"{name}-var"},
            "refresh": 2, "sort": 1, "multi": multi, "includeAll": multi, "current": {}, "hide": 0,
            "options": [], "regex": ""}


def annotations() -> dict:
    """Retrain triggers and canary weight changes, drawn on every time series."""
    return {"list": [
        {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
         "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"},
        {"datasource": DS, "enable": True, "iconColor": "orange", "name": "Retrain triggers",
         "expr": "sum by (adapter_alias) (increase(driftloop_monitor_retrain_triggers_total[2m])) > 0",
         "titleFormat": "RetrainTrigger {{adapter_alias}}", "step": "1m", "useValueForTime": False},
        {"datasource": DS, "enable": True, "iconColor": "purple", "name": "Canary weight changes",
         "expr": "max by (adapter_alias) (changes(driftloop_inference_canary_weight[2m])) > 0",
         "titleFormat": "canary weight changed: {{adapter_alias}}", "step": "1m", "useValueForTime": False},
    ]}


def dashboard(uid: str, title: str, description: str, panels: list[dict], variables: list[dict]) -> dict:
    return {
        "uid": uid, "title": title, "description": description, "tags": ["driftloop"],
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"}, "timepicker": {}, "timezone": "browser",
        "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
        "annotations": annotations(), "templating": {"list": variables}, "links": [
            {"type": "dashboards", "tags": ["driftloop"], "asDropdown": True, "title": "driftloop",
             "includeVars": False, "keepTime": True, "icon": "external link", "targetBlank": False,
             "tooltip": "", "url": ""}],
        "panels": panels,
    }


# -- the on-call overview -----------------------------------------------------------------------------

def overview() -> dict:
    g = Layout()
    req = "driftloop_inference_requests_total"
    g.row("Now")
    g.add(stat("Requests/s", targets((f"sum(rate({req}[$__rate_interval]))", "")), unit="reqps"), w=4, h=4)
    g.add(stat("Server errors", targets((
        f"sum(rate({req}{{{SERVER_ERRORS}}}[$__rate_interval])) / sum(rate({req}[$__rate_interval]))", "")),
        unit="percentunit", steps=((None, "green"), (0.01, "orange"), (0.05, "red"))), w=4, h=4)
    g.add(stat("Latency p95", targets((
        "histogram_quantile(0.95, sum by (le) (rate(driftloop_inference_request_duration_seconds_bucket"
        "[$__rate_interval])))", "")), unit="s", steps=((None, "green"), (2.5, "orange"), (5, "red"))), w=4, h=4)
    g.add(stat("Open drift episodes", targets(("sum(driftloop_monitor_episode_active)", "")),
               steps=((None, "green"), (1, "orange"))), w=4, h=4)
    g.add(stat("Monitor lag (records)", targets(("sum(driftloop_monitor_consumer_lag)", "")),
               steps=((None, "green"), (1000, "orange"), (5000, "red"))), w=4, h=4)
    g.add(stat("Events spooled", targets(("sum(driftloop_events_spooled)", "")),
               steps=((None, "green"), (100, "orange"), (1000, "red"))), w=4, h=4)

    g.row("Traffic, errors, latency")
    g.add(timeseries("Requests by adapter alias", targets(
        (f"sum by (adapter_alias) (rate({req}[$__rate_interval]))", "{{adapter_alias}}")), unit="reqps"))
    g.add(timeseries("Server error ratio by adapter alias", targets((
        f"sum by (adapter_alias) (rate({req}{{{SERVER_ERRORS}}}[$__rate_interval])) / "
        f"sum by (adapter_alias) (rate({req}[$__rate_interval]))", "{{adapter_alias}}")),
        unit="percentunit", threshold=0.05, desc="Alert DriftloopErrorRateHigh above 5%."))
    g.add(timeseries("Non-OK responses by code", targets(
        (f'sum by (code) (rate({req}{{code!="OK"}}[$__rate_interval]))', "{{code}}")), unit="reqps", stack=True,
        desc="Caller mistakes (INVALID_ARGUMENT, NOT_FOUND, ...) included here, excluded from the error ratio."))
    g.add(timeseries("Latency (successful calls)", quantiles("driftloop_inference_request_duration_seconds", "method"),
                     unit="s", threshold=5, desc="Alert DriftloopLatencyP95High: p95 per alias above 5 s."))
    g.add(timeseries("Time to first token (streamed requests)",
                     quantiles("driftloop_inference_time_to_first_token_seconds", "adapter_alias", qs=(0.5, 0.95)),
                     unit="s"))
    g.add(timeseries("In-flight generations by replica", targets(
        ("sum by (instance) (driftloop_inference_in_flight_requests)", "{{instance}}")), stack=True))
    g.add(timeseries("Tokens/s", targets(
        ("sum by (kind) (rate(driftloop_inference_tokens_total[$__rate_interval]))", "{{kind}}")), unit="short"))
    g.add(timeseries("Feedback received", targets(
        ("sum by (rating) (rate(driftloop_inference_feedback_total[$__rate_interval]))", "{{rating}}")),
        unit="reqps", stack=True))
    g.add(timeseries("Adapter rejections", targets(
        ("sum by (reason) (increase(driftloop_inference_adapter_rejections_total[$__rate_interval]))", "{{reason}}")),
        desc="Adapters refused by validation before they reached the engine."))

    g.row("Quality: rates against the monitor's thresholds")
    for name, unit in RATE_DETECTORS:
        g.add(timeseries(name.replace("_", " ").capitalize(), targets(
            (f'max by (adapter_alias) (driftloop_monitor_rate{{detector="{name}"}})', "{{adapter_alias}}"),
            (f'max by (adapter_alias) (driftloop_monitor_rate_threshold{{detector="{name}"}})',
             "threshold {{adapter_alias}}")), unit=unit, dashed=("threshold",),
            desc="Computed by the monitor over its latest RATE_WINDOW samples; no verdict below MIN_SAMPLES."))

    g.row("Drift: statistics against thresholds")
    g.add(timeseries("Input drift (MMD² on prompt embeddings)", targets(
        ('max by (adapter_alias) (driftloop_monitor_drift_statistic{detector="input_embedding"})', "{{adapter_alias}}"),
        ('max by (adapter_alias) (driftloop_monitor_drift_statistic_threshold{detector="input_embedding"})',
         "threshold {{adapter_alias}}")), dashed=("threshold",),
        desc="Above its permutation threshold = drift in that window. Alert when 2 consecutive windows drift for "
             "5 minutes; a retrain trigger after 3 (SUSTAINED_WINDOWS)."), w=12)
    g.add(timeseries("Drift p-values (log scale; below the dashed line = drift)", targets(
        ("min by (adapter_alias, detector) (driftloop_monitor_drift_p_value)", "{{adapter_alias}} {{detector}}"),
        ("max by (detector) (driftloop_monitor_drift_p_value_threshold)", "threshold {{detector}}")),
        log=True, dashed=("threshold",)), w=12)
    g.add(table("Consecutive windows over threshold",
                "max by (adapter_alias, detector) (driftloop_monitor_signal_windows_over) > 0",
                desc="Drift signals raise a trigger after 3 windows (SUSTAINED_WINDOWS), rates after 1.",
                rename={"Value": "windows over"}), w=8)
    g.add(timeseries("Open episodes and retrain triggers", targets(
        ("sum by (adapter_alias) (driftloop_monitor_episode_active)", "episode {{adapter_alias}}"),
        ("sum by (adapter_alias) (increase(driftloop_monitor_retrain_triggers_total[$__rate_interval]))",
         "triggers {{adapter_alias}}"))), w=8)
    g.add(timeseries("Reference set size", targets(
        ("max by (adapter_alias) (driftloop_monitor_reference_samples)", "{{adapter_alias}}")),
        desc="Below REFERENCE_SIZE the stream is still collecting its reference (after a promotion too)."), w=8)

    g.row("Adapters, rollouts, retraining")
    g.add(table("Loaded adapter versions", "max by (adapter_alias, version, role) "
                "(driftloop_inference_adapter_version_info)", hide=("Value",)), w=8)
    g.add(timeseries("Canary weight", targets(
        ("max by (adapter_alias) (driftloop_inference_canary_weight)", "{{adapter_alias}}")), unit="percentunit"), w=8)
    g.add(timeseries("Rollout records applied", targets(
        ("sum by (result) (increase(driftloop_inference_rollouts_applied_total[$__rate_interval]))", "{{result}}")),
        stack=True), w=8)
    g.add(timeseries("Retraining runs by outcome", targets(
        ("sum by (adapter_alias, outcome) (increase(driftloop_retrainer_runs_total[$__rate_interval]))",
         "{{adapter_alias}} {{outcome}}")), stack=True), w=8)
    g.add(timeseries("Gate decisions", targets(
        ("sum by (adapter_alias, verdict) (increase(driftloop_retrainer_gate_decisions_total[$__rate_interval]))",
         "{{adapter_alias}} {{verdict}}")), stack=True), w=8)
    g.add(timeseries("Runs in progress", targets(
        ("max by (adapter_alias) (driftloop_retrainer_run_in_progress)", "{{adapter_alias}}"))), w=8)
    g.add(timeseries("Retrainer: triggers consumed", targets(
        ("sum by (result) (increase(driftloop_retrainer_triggers_total[$__rate_interval]))", "{{result}}")),
        stack=True), w=8)
    g.add(timeseries("Retrainer: stage duration p95", targets((
        "histogram_quantile(0.95, sum by (le, stage) (rate(driftloop_retrainer_stage_duration_seconds_bucket"
        "[$__rate_interval])))", "{{stage}}")), unit="s"), w=8)
    g.add(table("Engines and backends", "max by (instance, engine, model, backend, window_size) "
                "(driftloop_inference_engine_info or driftloop_monitor_info)", hide=("Value",),
                desc="What each inference replica runs, and the monitor's drift backend and windows."), w=8)

    g.row("Pipeline: Kafka, monitor, events")
    g.add(timeseries("Monitor consumer lag", targets(
        ("sum by (topic) (driftloop_monitor_consumer_lag)", "{{topic}}")), threshold=5000,
        desc="Alert DriftloopConsumerLagHigh above 5,000 for 10 minutes."))
    g.add(timeseries("Monitor throughput", targets(
        ("sum by (topic, result) (rate(driftloop_monitor_events_total[$__rate_interval]))", "{{topic}} {{result}}")),
        unit="reqps"))
    g.add(timeseries("Embedding sample rate", targets(
        ("min(driftloop_monitor_embedding_sample_rate)", "sample rate")), unit="percentunit",
        desc="1 normally; 0.25 while the backlog is above 5,000 records."))
    g.add(timeseries("Event spool (undelivered)", targets(
        ("sum by (service, instance) (driftloop_events_spooled)", "{{service}} {{instance}}")), threshold=1000,
        desc="Alert DriftloopEventsSpooling above 1,000 for 10 minutes."))
    g.add(timeseries("Event spool size", targets(
        ("sum by (service, instance) (driftloop_events_spool_bytes)", "{{service}} {{instance}}")), unit="bytes",
        desc="Past SPOOL_MAX_BYTES the oldest events are dropped."))
    g.add(timeseries("Events acknowledged by Kafka", targets(
        ("sum by (service, topic) (rate(driftloop_events_emitted_total[$__rate_interval]))", "{{service}} {{topic}}")),
        unit="reqps"))
    g.add(timeseries("Kafka delivery up", targets(
        ("min by (service, instance) (driftloop_kafka_up)", "{{service}} {{instance}}")),
        desc="0: the last delivery attempt failed (events are spooled)."))
    g.add(timeseries("Dropped events", targets(
        ("sum by (service, reason) (increase(driftloop_events_dropped_total[$__rate_interval]))",
         "{{service}} {{reason}}")), desc="Any value here is lost data."))
    g.add(timeseries("Dead letters", targets(
        ("sum by (reason) (increase(driftloop_monitor_dead_letters_total[$__rate_interval]))", "{{reason}}"),
        ("sum by (reason) (increase(driftloop_monitor_feedback_unmatched_total[$__rate_interval]))",
         "unmatched feedback {{reason}}"))))
    g.add(timeseries("Detector run time p95", targets((
        "histogram_quantile(0.95, sum by (le, detector) (rate(driftloop_monitor_detector_duration_seconds_bucket"
        "[$__rate_interval])))", "{{detector}}")), unit="s"))
    return dashboard("driftloop-overview", "driftloop / On-call overview",
                     "Serving, quality, drift, adapters and the event pipeline at a glance. Alerts: "
                     "deploy/prometheus/alerts.yaml; runbooks: deploy/runbooks/.", g.panels, [datasource_var()])


# -- drill-down per adapter alias -----------------------------------------------------------------------

def adapter() -> dict:
    g = Layout()
    a = 'adapter_alias="$adapter_alias"'
    req = "driftloop_inference_requests_total"
    g.row("Serving")
    g.add(timeseries("Requests by code", targets(
        (f"sum by (code) (rate({req}{{{a}}}[$__rate_interval]))", "{{code}}")), unit="reqps", stack=True))
    g.add(timeseries("Server error ratio", targets((
        f"sum(rate({req}{{{a}, {SERVER_ERRORS}}}[$__rate_interval])) / sum(rate({req}{{{a}}}[$__rate_interval]))",
        "server errors")), unit="percentunit", threshold=0.05))
    g.add(timeseries("Latency (successful calls)", quantiles("driftloop_inference_request_duration_seconds", "method",
                                                             selector=a), unit="s", threshold=5))
    g.add(timeseries("Time to first token (streamed requests)",
                     quantiles("driftloop_inference_time_to_first_token_seconds", "model", selector=a), unit="s"))
    g.add(timeseries("Tokens/s", targets(
        (f"sum by (kind) (rate(driftloop_inference_tokens_total{{{a}}}[$__rate_interval]))", "{{kind}}"))))
    g.add(timeseries("Latency reported by prediction events (monitor)",
                     quantiles("driftloop_monitor_prediction_latency_seconds", "model", selector=a, qs=(0.5, 0.95)),
                     unit="s"))

    g.row("Versions side by side (canary against stable)")
    # Requests refused before routing have no version: left out here, counted in the rows above.
    v = f'{a}, adapter_version!=""'
    per_version = f"sum by (adapter_version) (rate({req}{{{v}}}[$__rate_interval]))"
    g.add(timeseries("Requests by version", targets((per_version, "{{adapter_version}}")), unit="reqps",
                     desc="The version that served each request (driftloop_inference_adapter_version_info: its "
                          "role); the canary's share follows its weight."))
    g.add(timeseries("Server error ratio by version", targets((
        f"(sum by (adapter_version) (rate({req}{{{v}, {SERVER_ERRORS}}}[$__rate_interval])) or {per_version} * 0)"
        f" / {per_version}", "{{adapter_version}}")), unit="percentunit", threshold=0.05,
        desc="Server-side codes only, as the alert; 0 for a version without errors."))
    g.add(timeseries("Latency by version (successful calls)", quantiles(
        "driftloop_inference_request_duration_seconds", "adapter_version", selector=v, qs=(0.5, 0.95)), unit="s",
        threshold=5))
    g.add(timeseries("Time to first token by version (streamed requests)", quantiles(
        "driftloop_inference_time_to_first_token_seconds", "adapter_version", selector=v, qs=(0.5, 0.95)),
        unit="s"))
    g.add(timeseries("Completion tokens per answer by version", targets((
        f'sum by (adapter_version) (rate(driftloop_inference_tokens_total{{{v}, kind="completion"}}'
        f'[$__rate_interval])) / sum by (adapter_version) (rate({req}{{{v}, code="OK"}}[$__rate_interval]))',
        "{{adapter_version}}")), desc="A version that answers longer is slower too."))
    g.add(table("Loaded versions", f"max by (version, role) (driftloop_inference_adapter_version_info{{{a}}})",
                hide=("Value",), desc="Each version's role: stable, canary, draining or loaded."), w=8)

    g.row("Rollouts")
    g.add(timeseries("Canary weight", targets(
        (f"max(driftloop_inference_canary_weight{{{a}}})", "canary weight")), unit="percentunit"), w=12)
    g.add(timeseries("Replicas serving each version", targets(
        (f"count by (version, role) (driftloop_inference_adapter_version_info{{{a}}})", "{{version}} {{role}}")),
        desc="Every replica follows the rollout topic: all should serve the same versions."), w=12)

    g.row("Quality: rates against thresholds")
    for name, unit in RATE_DETECTORS:
        g.add(timeseries(name.replace("_", " ").capitalize(), targets(
            (f'max(driftloop_monitor_rate{{{a}, detector="{name}"}})', name),
            (f'max(driftloop_monitor_rate_threshold{{{a}, detector="{name}"}})', "threshold")),
            unit=unit, dashed=("threshold",)))
    g.add(timeseries("Feedback joined by the monitor", targets(
        (f"sum by (rating) (rate(driftloop_monitor_feedback_total{{{a}}}[$__rate_interval]))", "{{rating}}")),
        unit="reqps", stack=True))
    g.add(timeseries("Predictions by outcome", targets(
        (f"sum by (outcome) (rate(driftloop_monitor_predictions_total{{{a}}}[$__rate_interval]))", "{{outcome}}")),
        unit="reqps", stack=True))
    g.add(timeseries("Episode and triggers", targets(
        (f"max(driftloop_monitor_episode_active{{{a}}})", "episode open"),
        (f"sum(increase(driftloop_monitor_retrain_triggers_total{{{a}}}[$__rate_interval]))", "triggers"),
        (f"max(driftloop_monitor_reference_samples{{{a}}})", "reference samples"))))

    g.row("Slices (languages, declared request tags)")
    for name, unit in RATE_DETECTORS[:2]:
        g.add(timeseries(f"{name.replace('_', ' ').capitalize()} by slice", targets(
            (f'max by (slice) (driftloop_monitor_slice_rate{{{a}, detector="{name}"}})', "{{slice}}"),
            (f'max(driftloop_monitor_rate_threshold{{{a}, detector="{name}"}})', "threshold")),
            unit=unit, dashed=("threshold",),
            desc="Each slice's own rate (its stream: MONITOR_SLICE_TAGS, SLICE_LANGUAGE): one group failing "
                 "while the alias's average looks fine shows here first (alert DriftloopSliceDegraded)."))
    g.add(timeseries("Predictions and open episodes by slice", targets(
        (f"sum by (slice) (rate(driftloop_monitor_slice_predictions_total{{{a}}}[$__rate_interval]))", "{{slice}}"),
        (f"max by (slice) (driftloop_monitor_slice_episode_active{{{a}}})", "episode {{slice}}"))))

    g.row("Drift detectors")
    for det in DRIFT_DETECTORS:
        d = f'{a}, detector="{det}"'
        stat_targets = [(f"max(driftloop_monitor_drift_statistic{{{d}}})", "statistic")]
        if det == "input_embedding":  # the only test with a statistic threshold (MMD permutations)
            stat_targets.append((f"max(driftloop_monitor_drift_statistic_threshold{{{d}}})", "threshold statistic"))
        stat_targets += [
            (f"min(driftloop_monitor_drift_p_value{{{d}}})", "p-value"),
            (f"max(driftloop_monitor_drift_p_value_threshold{{{d}}})", "threshold p-value"),
            (f"max(driftloop_monitor_signal_windows_over{{{d}}})", "windows over"),
        ]
        g.add(timeseries(f"{det}", targets(*stat_targets), dashed=("threshold",),
                         desc="Statistic and p-value of the latest window against their thresholds; windows over "
                              "counts consecutive drifted windows."))
    g.add(table("Latest window drifted (1 = yes)", f"max by (detector) (driftloop_monitor_drift_detected{{{a}}})",
                rename={"Value": "drifted"}), w=8)
    g.add(table("Latest windows", f"max by (detector) (driftloop_monitor_window_samples{{{a}}})",
                rename={"Value": "samples"}), w=8)
    g.add(table("Last test (age, seconds)",
                f"time() - max by (detector) (driftloop_monitor_last_test_timestamp_seconds{{{a}}})",
                rename={"Value": "seconds ago"}), w=8)

    g.row("Retraining")
    g.add(timeseries("Runs by outcome", targets(
        (f"sum by (outcome) (increase(driftloop_retrainer_runs_total{{{a}}}[$__rate_interval]))", "{{outcome}}")),
        stack=True))
    g.add(timeseries("Gate scores: candidate against serving", targets(
        (f"max by (metric, role) (driftloop_retrainer_gate_score{{{a}}})", "{{metric}} {{role}}"))))
    g.add(timeseries("Gate decisions and rollout actions", targets(
        (f"sum by (verdict) (increase(driftloop_retrainer_gate_decisions_total{{{a}}}[$__rate_interval]))",
         "gate {{verdict}}"),
        (f"sum by (action) (increase(driftloop_retrainer_rollouts_total{{{a}}}[$__rate_interval]))",
         "rollout {{action}}")), stack=True))
    g.add(stat("Run in progress", targets((f"max(driftloop_retrainer_run_in_progress{{{a}}})", "")),
               steps=((None, "green"), (1, "blue"))), w=6, h=4)
    g.add(stat("Since the last promotion", targets(
        (f"time() - max(driftloop_retrainer_last_success_timestamp_seconds{{{a}}})", "")), unit="s"), w=6, h=4)
    g.add(stat("Last dataset rows", targets(('max by (kind) (driftloop_retrainer_dataset_rows)', "{{kind}}")),
               desc="Of the retrainer's last run (any alias)."), w=12, h=4)
    return dashboard("driftloop-adapter", "driftloop / Adapter drill-down",
                     "Everything about one adapter alias: serving, versions, quality, each drift detector, "
                     "retraining.", g.panels,
                     [datasource_var(),
                      query_var("adapter_alias", "Adapter alias", "driftloop_inference_requests_total")])


DASHBOARDS = {"driftloop-overview.json": overview, "driftloop-adapter.json": adapter}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
