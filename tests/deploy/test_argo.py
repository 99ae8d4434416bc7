"""The Argo Rollouts AnalysisTemplate of deploy/argo/: well-formed by Argo's own rules, its queries
valid PromQL (promql-parser and promtool) on declared metrics only, and measuring what it says: promtool
evaluates each query on synthetic series of a worse canary, an equal one and one with too little
traffic, and the success and failure conditions turn those values into Argo's phases."""

from __future__ import annotations

import re

import promql_parser
import pytest
import yaml

from tests.deploy.declared import exported_series
from tests.deploy.paths import ARGO_DIR
from tests.deploy.promql import ARG_RE, analysis_expressions, data_operands, metric_names, render_args

TEMPLATE = ARGO_DIR / "analysis-template.yaml"
DOC = yaml.safe_load(TEMPLATE.read_text())
DEFAULTS = {a["name"]: a["value"] for a in DOC["spec"]["args"] if "value" in a}
METRICS = {m["name"]: m for m in DOC["spec"]["metrics"]}
EXPRS = analysis_expressions([TEMPLATE])


def run_args(alias: str = "transit-qa", canary: str = "v2", stable: str = "v1") -> dict[str, str]:
    return {**DEFAULTS, "adapter-alias": alias, "canary-version": canary, "stable-version": stable}


# -- shape --------------------------------------------------------------------------------------------

def test_template_takes_the_alias_and_both_versions():
    assert (DOC["apiVersion"], DOC["kind"]) == ("argoproj.io/v1alpha1", "AnalysisTemplate")
    required = {a["name"] for a in DOC["spec"]["args"] if "value" not in a}
    assert required == {"adapter-alias", "canary-version", "stable-version"}
    used = set(ARG_RE.findall(TEMPLATE.read_text().split("apiVersion:", 1)[1]))
    declared = {a["name"] for a in DOC["spec"]["args"]}
    assert used == declared, f"used but not declared: {used - declared}; declared, unused: {declared - used}"
    assert set(METRICS) == {"error-ratio-increase", "p95-latency-ratio"}
    assert [e.kind for e in EXPRS] == ["analysis", "analysis"]


@pytest.mark.parametrize("name", list(METRICS))
def test_argo_accepts_the_metric(name):
    """The checks Argo Rollouts makes before it runs a metric (utils/analysis ValidateMetric), and a
    measurement that can be neither a pass nor a failure is not counted as a pass."""
    m = METRICS[name]
    count, failures, inconclusive = m["count"], m.get("failureLimit", 0), m.get("inconclusiveLimit", 0)
    assert count >= failures and count >= inconclusive and failures >= 0 and inconclusive >= 0
    for key in ("interval", "initialDelay"):
        assert re.fullmatch(r"\d+[smh]", m[key]), f"{key}: {m[key]}"
    assert len(m["provider"]) == 1 and "prometheus" in m["provider"]
    address = render_args(m["provider"]["prometheus"]["address"], run_args())
    assert re.fullmatch(r"https?://[\w.-]+(:\d+)?/?", address), address
    # both conditions: a measurement that meets neither (no value) is Inconclusive, never Successful
    assert m["successCondition"] and m["failureCondition"]


# -- the queries ------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr", EXPRS, ids=lambda e: e.name)
def test_query_parses_and_compares_the_two_versions(expr):
    query = render_args(expr.expr, run_args())
    promql_parser.parse(query)
    unknown = metric_names(query) - exported_series()
    assert not unknown, f"{expr.name} uses undeclared metrics {sorted(unknown)}"
    selectors = re.findall(r"(driftloop_\w+)\{([^}]*)\}", query)
    assert selectors and all(name in query for name, _ in selectors)
    versions = set()
    for name, labels in selectors:
        assert 'adapter_alias="transit-qa"' in labels, f"{name}{{{labels}}} is not the alias's"
        versions |= set(re.findall(r'adapter_version="(v\d)"', labels))
        assert re.search(r'adapter_version="v\d"', labels), f"{name}{{{labels}}} is not one version's"
    assert versions == {"v1", "v2"}
    for operand in data_operands(query):  # what a live check evaluates (tests/integration/deploy)
        assert metric_names(operand), f"operand {operand!r} queries no driftloop_ metric"


def test_promtool_checks_the_queries(run, tmp_path):
    rules = {"groups": [{"name": "analysis", "rules": [
        {"record": f"analysis:{e.name.split(' / ')[1].replace('-', '_')}:check",
         "expr": render_args(e.expr, run_args())} for e in EXPRS]}]}
    path = tmp_path / "analysis-queries.yaml"
    path.write_text(yaml.safe_dump(rules))
    out = run("promtool", "check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(EXPRS)} rules found" in out.stdout


# -- what the queries measure ----------------------------------------------------------------------

def _requests(alias: str, version: str, code: str, per_minute: int) -> dict:
    return {"series": f'driftloop_inference_requests_total{{job="inference", instance="i0", method="Generate", '
                      f'model="base", adapter_alias="{alias}", adapter_version="{version}", code="{code}", '
                      f'transport="grpc"}}', "values": f"0+{per_minute}x20"}


def _latency(alias: str, version: str, buckets: dict[str, int]) -> list[dict]:
    """Cumulative bucket counts a minute; the count is the +Inf bucket's."""
    labels = (f'job="inference", instance="i0", method="Generate", model="base", adapter_alias="{alias}", '
              f'adapter_version="{version}", transport="grpc"')
    name = "driftloop_inference_request_duration_seconds"
    out = [{"series": f'{name}_bucket{{{labels}, le="{le}"}}', "values": f"0+{n}x20"} for le, n in buckets.items()]
    return [*out, {"series": f"{name}_count{{{labels}}}", "values": f"0+{buckets['+Inf']}x20"}]


FAST = {"0.25": 30, "0.5": 60, "1.0": 60, "+Inf": 60}  # p95: 0.25 + 0.25 * (57 - 30) / (60 - 30) = 0.475 s
SLOW = {"0.25": 0, "0.5": 30, "1.0": 60, "+Inf": 60}  # p95: 0.5 + 0.5 * (57 - 30) / (60 - 30) = 0.95 s

SERIES = [
    # worse: the canary fails 10% of its calls (the stable none: caller mistakes do not count) and is
    # twice as slow
    _requests("worse", "v1", "OK", 60), _requests("worse", "v1", "INVALID_ARGUMENT", 30),
    _requests("worse", "v2", "OK", 54), _requests("worse", "v2", "INTERNAL", 6),
    *_latency("worse", "v1", FAST), *_latency("worse", "v2", SLOW),
    # same: 5% server errors and the same latency on both
    _requests("same", "v1", "OK", 57), _requests("same", "v1", "UNAVAILABLE", 3),
    _requests("same", "v2", "OK", 57), _requests("same", "v2", "UNAVAILABLE", 3),
    *_latency("same", "v1", FAST), *_latency("same", "v2", FAST),
    # quiet: the canary served 2 calls a minute, 10 in the window (< min-requests 20): no value
    _requests("quiet", "v1", "OK", 60), _requests("quiet", "v2", "OK", 1), _requests("quiet", "v2", "INTERNAL", 1),
    *_latency("quiet", "v1", FAST), *_latency("quiet", "v2", {**SLOW, "+Inf": 2, "1.0": 2, "0.5": 1}),
]
EXPECTED = {  # (metric, alias): the value at 10 minutes, None for no value
    ("error-ratio-increase", "worse"): 0.1, ("error-ratio-increase", "same"): 0.0,
    ("error-ratio-increase", "quiet"): None,
    ("p95-latency-ratio", "worse"): 2.0, ("p95-latency-ratio", "same"): 1.0, ("p95-latency-ratio", "quiet"): None,
}


def test_promtool_evaluates_each_case(run, tmp_path):
    queries = {e.name.split(" / ")[1]: e.expr for e in EXPRS}
    cases = [{"expr": render_args(queries[metric], run_args(alias)), "eval_time": "10m",
              "exp_samples": [] if value is None else [{"labels": "{}", "value": value}]}
             for (metric, alias), value in EXPECTED.items()]
    tests = {"rule_files": [], "evaluation_interval": "1m",
             "tests": [{"interval": "1m", "input_series": SERIES, "promql_expr_test": cases}]}
    path = tmp_path / "analysis_test.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    out = run("promtool", "test", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def phase(metric: str, result: list[float]) -> str:
    """Argo's verdict on one measurement (utils/evaluate EvaluateResult) with the template's default
    thresholds. The conditions use a small subset of Argo's expression language (expr): `len`,
    indexing, comparisons, `&&`, numbers; Python evaluates that subset the same way."""

    def holds(condition: str) -> bool:
        text = render_args(condition, DEFAULTS)
        assert re.fullmatch(r"[\w\[\]().\s<>=&|]+", text), f"outside the subset this test evaluates: {text}"
        return bool(eval(text.replace("&&", " and ").replace("||", " or "),  # noqa: S307 (checked above)
                         {"__builtins__": {}}, {"len": len, "result": result}))

    m = METRICS[metric]
    failed, succeeded = holds(m["failureCondition"]), holds(m["successCondition"])
    return "Failed" if failed else "Successful" if succeeded else "Inconclusive"


@pytest.mark.parametrize(("case", "verdict"), [("worse", "Failed"), ("same", "Successful"), ("quiet", "Inconclusive")])
@pytest.mark.parametrize("metric", list(METRICS))
def test_conditions_turn_each_case_into_its_phase(metric, case, verdict):
    value = EXPECTED[(metric, case)]
    assert phase(metric, [] if value is None else [value]) == verdict


def test_thresholds_are_inclusive():
    assert phase("error-ratio-increase", [0.02]) == "Successful"
    assert phase("error-ratio-increase", [0.0201]) == "Failed"
    assert phase("p95-latency-ratio", [1.25]) == "Successful"
    assert phase("p95-latency-ratio", [1.3]) == "Failed"
