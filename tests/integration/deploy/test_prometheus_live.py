"""A real Prometheus scrapes the real services during a short run of the whole loop; then every
dashboard query (panels, annotations, template variables) and every alert expression returns data
through Prometheus' HTTP API, and every alert rule, loaded into that Prometheus, evaluates without
error (those the run provoked fire).

That is the check that the names in deploy/ (alert rules; tools/dashboards.py → the dashboards) are
the names the services export (services/driftloop/core/metrics/), with the labels the queries
select on, after the events that create them. An alert is normally empty (not firing): what must
return data are the operands under its condition (tests/deploy/promql.py: data_operands).

The run, on a tiny random Llama, the session's broker and the services as processes (once per
module, ~3 minutes with vLLM's start):

- inference (vLLM), monitor (its own environment), retrainer; Prometheus scraping them every second;
- four adapter aliases, each asked 30 questions with feedback (nearly all negative), so the monitor
  (reference 20, windows of 10) tests every drift signal and raises one RetrainTrigger per alias
  (negative-feedback rate), and the retrainer runs each trigger to a different end:
  A  corrections; served by a no-op LoRA; riders keep asking during the canary → promoted;
  B  served by a no-op LoRA, feedback without corrections: nothing to train on → failed (an alias
     that is not routed never gets that far: its requests are NOT_FOUND, no event, no trigger);
  C  served by a random LoRA; riders "correct" it with exactly what it said (its answers' tokens)
     → the candidate does worse than serving → rejected by the gate;
  D  like A, but nobody asks D during its canary → rolled back;
  Candidates keep their step-0 weights (learning rate 1e-7; PEFT initialises B = 0), so they answer
  exactly as the base does: like A's and D's no-op versions (margin 0: the gate passes), unlike C's
  (margin -1). The other gate criteria are opened (a random model's exact match is 0 anyway);
- on A also: streaming calls, a caller mistake (INVALID_ARGUMENT), server-side deadline errors
  (DEADLINE_EXCEEDED: a request without a client deadline gets the service's default, set tiny
  here); an unknown alias (NOT_FOUND); an adapter refused before load; a poison record on the
  predictions topic (dead-lettered by the monitor). Those calls again once A's candidate is
  promoted: the request series are per adapter version, and the version they were first made on is
  unloaded (its series removed with it).

The dashboards' ``$adapter_alias`` is A. The Argo AnalysisTemplate's queries (deploy/argo/) are run
with A's serving version as both canary and stable.
"""

from __future__ import annotations

import contextlib
import json
import random
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml

from driftloop.core.kafka import EventProducer
from driftloop.core.topics import FEEDBACK, PREDICTIONS, RETRAIN_TRIGGERS
from driftloop.demo.traffic import prompt as transit_question
from driftloop.local.kafka import LocalKafka, free_port
from driftloop.local.procs import ServiceProcess
from driftloop.local.tiny_model import build, make_lora
from driftloop.retrainer.data import Example, clean, question_key, split_of
from driftloop.retrainer.evaluate import TOKEN, exact_match
from driftloop.retrainer.prompts import render_prompt
from driftloop.v1 import events_pb2, inference_pb2_grpc
from driftloop.v1 import inference_pb2 as pb
from tests.deploy.paths import REPO, rule_files
from tests.deploy.promql import all_expressions, analysis_expressions, data_operands, render, render_args
from tests.integration.helpers import metric, scrape, start_group_at_end

pytestmark = pytest.mark.integration

PROMETHEUS = REPO / ".tools" / "bin" / "prometheus"
MONITOR_PYTHON = REPO / ".venvs" / "monitor" / "bin" / "python"
ADMIN_TOKEN = "live-admin-token"
ADMIN_MD = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
# Per alias 30 questions = the monitor's reference (20) + one window (10), each with negative feedback;
# the first of each split (by the retrainer's split of the question) with a correction: ≥10 train,
# val and test rows are what a run needs. C keeps spare questions for answers cleaning would drop.
QUESTIONS = {"test": 5, "val": 5, "train": 20}
WITH_CORRECTION = {"test": 2, "val": 2, "train": 12}
OUTCOMES = {"a": "promoted", "b": "failed", "c": "rejected", "d": "rolled_back"}


def _require(path: Path, how: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO)} is missing: {how} (make test does)")
    return path


# -- Prometheus ----------------------------------------------------------------------------------------

@dataclass
class Prometheus:
    process: subprocess.Popen
    url: str
    log: Path

    def api(self, path: str, **params: str) -> dict:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=30) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list:
        """Instant query now; the result as a list of samples (a scalar counts as one)."""
        try:
            data = self.api("/api/v1/query", query=expr)
        except urllib.error.HTTPError as exc:  # 400: the expression does not parse / evaluate
            raise AssertionError(f"{expr}: {exc.read().decode(errors='replace')}") from None
        return data["result"] if data["resultType"] in ("vector", "matrix") else [data["result"]]

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_prometheus(root: Path, targets: dict[str, str]) -> Prometheus:
    _require(PROMETHEUS, "run `make deploy-tools`")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files()],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [address]}]}
                           for job, address in targets.items()],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = root / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    prom = Prometheus(proc, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}:\n{prom.log_tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{prom.url}/-/ready", timeout=2) as r:
            if r.status == 200:
                return prom
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"prometheus not ready after 60 s:\n{prom.log_tail()}")


# -- the run ---------------------------------------------------------------------------------------------

@dataclass
class Live:
    prometheus: Prometheus
    aliases: dict[str, str]
    processes: dict[str, ServiceProcess]
    ready_s: float = 0.0

    def logs(self) -> str:
        return "\n".join(f"--- {name} ---\n{p.log_tail(25)}" for name, p in self.processes.items())


def _questions(rng: random.Random, n_by_split: dict[str, int], seen: set[str]) -> list[tuple[str, str]]:
    """(split, question) pairs: ``n_by_split`` questions of each split, none asked before."""
    need = dict(n_by_split)
    out = []
    while any(need.values()):
        q = transit_question(rng, shifted=rng.random() < 0.5)
        key = question_key(q)
        part = split_of(q)
        if key in seen or not need.get(part):
            continue
        seen.add(key)
        need[part] -= 1
        out.append((part, q))
    return out


def _tokens_answer(text: str) -> str:
    """An answer with the same exact-match tokens as ``text`` that passes the retrainer's cleaning."""
    return " ".join(TOKEN.findall(text.lower().rstrip("."))) + "."


def _ask(stub: inference_pb2_grpc.InferenceStub, alias: str, question: str) -> tuple[str, pb.GenerateResponse | None]:
    """Generate as the retrainer's gate does (same prompt template and sampling): (request id, reply);
    the reply is None when the alias is not routed."""
    request_id = uuid.uuid4().hex
    try:
        reply = stub.Generate(pb.GenerateRequest(
            request_id=request_id, prompt=render_prompt(question), adapter_alias=alias,
            sampling=pb.SamplingParams(max_tokens=32, temperature=0.0)), timeout=60)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return request_id, None
    return request_id, reply


def _alias_traffic(stub, role: str, alias: str, questions: list[tuple[str, str]]) -> dict[str, int]:
    """Every question once, each with feedback (negative but for a few of A's); corrections where
    the role wants them. Returns the corrections sent per split."""
    budget = dict(WITH_CORRECTION)
    for i, (part, q) in enumerate(questions):
        request_id, reply = _ask(stub, alias, q)
        correction = ""
        if role in ("a", "d") and budget[part]:
            correction = f"It runs every {5 + i} minutes from stop {i}."
        elif role == "c" and reply is not None and budget[part]:
            answer = _tokens_answer(reply.text)
            ok = exact_match(reply.text, answer) == 1.0 and clean([Example(q, answer)])[1].rows_out == 1
            correction = answer if ok else ""
        if correction:
            budget[part] -= 1
        positive = role == "a" and not correction and i % 5 == 0  # a few content riders on A
        rating = events_pb2.RATING_POSITIVE if positive else events_pb2.RATING_NEGATIVE
        stub.SubmitFeedback(pb.SubmitFeedbackRequest(request_id=request_id, rating=rating, correction=correction),
                            timeout=10)
    return {part: WITH_CORRECTION[part] - left for part, left in budget.items()}


def _extras(stub, alias: str, rng: random.Random) -> None:
    """Streaming calls, caller mistakes, server-side errors and an unknown alias."""
    for _ in range(3):
        for _ in stub.GenerateStream(pb.GenerateRequest(prompt=render_prompt(transit_question(rng, False)),
                                                        adapter_alias=alias), timeout=60):
            pass
    with pytest.raises(grpc.RpcError) as info:
        stub.Generate(pb.GenerateRequest(prompt="  ", adapter_alias=alias), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        stub.Generate(pb.GenerateRequest(prompt="the bus", adapter_alias="no-such-alias"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # No client deadline: the service's own default (set tiny for this run) applies and expires
    # inside the engine call, a server-side failure (counted as DEADLINE_EXCEEDED).
    codes = []
    for _ in range(3):
        with pytest.raises(grpc.RpcError) as info:
            stub.Generate(pb.GenerateRequest(prompt=render_prompt(transit_question(rng, True)), adapter_alias=alias,
                                             sampling=pb.SamplingParams(max_tokens=64, min_tokens=64)))
        codes.append(info.value.code())
    assert set(codes) == {grpc.StatusCode.DEADLINE_EXCEEDED}, codes


@contextlib.contextmanager
def background_traffic(stub, alias: str) -> Iterator[threading.Event]:
    """Riders keep asking ``alias`` (for its canary) until the block ends or the event is set."""
    stop = threading.Event()
    rng = random.Random(11)

    def loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(grpc.RpcError):
                stub.Generate(pb.GenerateRequest(prompt=render_prompt(transit_question(rng, False)),
                                                 adapter_alias=alias, sampling=pb.SamplingParams(max_tokens=8)),
                              timeout=60)
            stop.wait(0.1)

    thread = threading.Thread(target=loop, name="canary-traffic", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(60)


def _wait_outcomes(retrainer_url: str, aliases: dict[str, str], live: Live, on_done: Callable[[str], None],
                   timeout: float) -> None:
    deadline = time.monotonic() + timeout
    done: set[str] = set()
    samples: dict[str, float] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            samples = scrape(retrainer_url)
        for role, alias in aliases.items():
            for outcome in ("promoted", "failed", "rejected", "rolled_back"):
                if role not in done and metric(samples, "driftloop_retrainer_runs_total", adapter_alias=alias,
                                               outcome=outcome):
                    assert outcome == OUTCOMES[role], f"{role} ({alias}) ended {outcome}\n{live.logs()}"
                    done.add(role)
                    on_done(role)
        if done == set(aliases):
            return
        time.sleep(1)
    runs = {k: v for k, v in samples.items() if k.startswith("driftloop_retrainer_runs_total")}
    raise AssertionError(f"retrainer outcomes after {timeout:.0f}s: {runs}; waiting for "
                         f"{sorted(set(aliases) - done)}\n{live.logs()}")


@pytest.fixture(scope="module")
def live(kafka_broker: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The run, once for the module's checks; the services keep running (and Prometheus scraping)
    until the last check is done."""
    _require(MONITOR_PYTHON, "run `make env`")
    t0 = time.monotonic()
    run = f"live-{uuid.uuid4().hex[:8]}"
    aliases = {role: f"{run}-{role}" for role in OUTCOMES}
    kafka_settings = kafka_broker.kafka_settings()
    tmp_path = tmp_path_factory.mktemp("live")
    ports = {name: free_port() for name in ("grpc", "inference", "monitor", "retrainer")}
    common = {"DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap}
    processes: dict[str, ServiceProcess] = {}
    with contextlib.ExitStack() as stack:
        prometheus = start_prometheus(tmp_path, {s: f"127.0.0.1:{ports[s]}" for s in
                                                 ("inference", "monitor", "retrainer")})
        stack.callback(lambda: (prometheus.process.terminate(), prometheus.process.wait(30)))

        # The monitor first: it starts slowest (embedding model) and needs no model files.
        group = f"{run}-monitor"
        start_group_at_end(kafka_settings, group, [PREDICTIONS, FEEDBACK])
        processes["monitor"] = ServiceProcess("monitor", "driftloop.monitor", {
            **common, "DRIFTLOOP_MONITOR_GROUP_ID": group, "DRIFTLOOP_MONITOR_STATE_DIR": str(tmp_path / "monitor"),
            "DRIFTLOOP_MONITOR_METRICS_PORT": str(ports["monitor"]), "DRIFTLOOP_MONITOR_LAG_INTERVAL_S": "1",
            "DRIFTLOOP_MONITOR_REFERENCE_SIZE": "20", "DRIFTLOOP_MONITOR_WINDOW_SIZE": "10",
            "DRIFTLOOP_MONITOR_MIN_SAMPLES": "5", "DRIFTLOOP_MONITOR_MMD_PERMUTATIONS": "20",
            "DRIFTLOOP_MONITOR_TRIGGER_SIGNALS": '["negative_feedback_rate"]',
        }, tmp_path / "monitor.log", python=str(MONITOR_PYTHON))
        stack.callback(processes["monitor"].stop)

        base, adapters = tmp_path / "base", tmp_path / "adapters"
        start_group_at_end(kafka_settings, f"{run}-retrainer", [RETRAIN_TRIGGERS])
        processes["retrainer"] = ServiceProcess("retrainer", "driftloop.retrainer", {
            **common, "DRIFTLOOP_RETRAINER_GROUP_ID": f"{run}-retrainer",
            "DRIFTLOOP_RETRAINER_BASE_MODEL": str(base), "DRIFTLOOP_RETRAINER_ADAPTER_ROOT": str(adapters),
            "DRIFTLOOP_RETRAINER_STATE_DIR": str(tmp_path / "retrainer"),
            "DRIFTLOOP_RETRAINER_INFERENCE_ADDRESS": f"127.0.0.1:{ports['grpc']}",
            "DRIFTLOOP_RETRAINER_INFERENCE_ADMIN_TOKEN": ADMIN_TOKEN,
            "DRIFTLOOP_RETRAINER_METRICS_PORT": str(ports["retrainer"]), "DRIFTLOOP_RETRAINER_LOOKBACK_S": "3600",
            "DRIFTLOOP_RETRAINER_REPLAY_SHARE": "0", "DRIFTLOOP_RETRAINER_MAX_STEPS": "2",
            "DRIFTLOOP_RETRAINER_BATCH_SIZE": "8", "DRIFTLOOP_RETRAINER_LORA_RANK": "4",
            # The step-0 checkpoint (B = 0) stays the best: every candidate answers exactly as the base.
            "DRIFTLOOP_RETRAINER_LEARNING_RATE": "1e-7",
            # Only the margin over serving decides (a random model's exact match is 0 everywhere).
            "DRIFTLOOP_RETRAINER_GATE_MIN_EXACT_MATCH": "0", "DRIFTLOOP_RETRAINER_GATE_MIN_MARGIN": "0",
            "DRIFTLOOP_RETRAINER_GATE_MAX_REGRESSION_DROP": "1", "DRIFTLOOP_RETRAINER_GATE_MIN_ROBUSTNESS_RATIO": "0",
            "DRIFTLOOP_RETRAINER_GATE_MAX_SLICE_GAP": "1", "DRIFTLOOP_RETRAINER_GATE_MAX_LATENCY_P95_S": "600",
            "DRIFTLOOP_RETRAINER_CANARY_WEIGHT": "0.5", "DRIFTLOOP_RETRAINER_CANARY_MIN_REQUESTS": "1",
            "DRIFTLOOP_RETRAINER_CANARY_MAX_WAIT_S": "10",
            # C's rejection raises attempt 2, which waits for new corrections: none come, so it ends
            # (skipped) in 5 s instead of holding the retrainer 15 minutes.
            "DRIFTLOOP_RETRAINER_RETRY_WAIT_S": "5",
        }, tmp_path / "retrainer.log", args=("serve",))
        stack.callback(processes["retrainer"].stop)

        build(base)
        processes["inference"] = ServiceProcess("inference", "driftloop.inference", {
            **common, "DRIFTLOOP_INFERENCE_MODEL_PATH": str(base), "DRIFTLOOP_INFERENCE_MODEL_NAME": f"{run}-llama",
            "DRIFTLOOP_INFERENCE_ADAPTER_ROOT": str(adapters), "DRIFTLOOP_INFERENCE_SPOOL_DIR": str(tmp_path / "spool"),
            "DRIFTLOOP_INFERENCE_PORT": str(ports["grpc"]), "DRIFTLOOP_INFERENCE_METRICS_PORT": str(ports["inference"]),
            "DRIFTLOOP_INFERENCE_HTTP_PORT": "0",
            "DRIFTLOOP_INFERENCE_ADMIN_TOKEN": ADMIN_TOKEN, "DRIFTLOOP_INFERENCE_MAX_TOKENS_LIMIT": "64",
            "DRIFTLOOP_INFERENCE_DEFAULT_MAX_TOKENS": "8", "DRIFTLOOP_INFERENCE_DEFAULT_DEADLINE_S": "0.02",
            "DRIFTLOOP_INFERENCE_GRACE_PERIOD_S": "1",
        }, tmp_path / "inference.log")
        stack.callback(processes["inference"].stop)
        for role in ("a", "b", "d"):  # what serves today: a no-op LoRA (PEFT's B = 0)
            make_lora(base, adapters / aliases[role] / "v0", rank=4, scale=0.0, targets=("q_proj", "v_proj"))
        make_lora(base, adapters / aliases["c"] / "v0", rank=4, seed=3)  # random: answers unlike the base's

        live = Live(prometheus, aliases, processes)
        for name, proc in processes.items():
            try:
                proc.wait_ready(timeout=300)
            except RuntimeError as exc:
                raise AssertionError(f"{name} did not start: {exc}") from None
        live.ready_s = time.monotonic() - t0
        channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}"))
        grpc.channel_ready_future(channel).result(timeout=30)
        stub, admin = inference_pb2_grpc.InferenceStub(channel), inference_pb2_grpc.AdapterAdminStub(channel)
        for role in ("a", "b", "c", "d"):
            admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias=aliases[role], version="v0",
                                                    path=f"{aliases[role]}/v0"), metadata=ADMIN_MD, timeout=120)
            admin.SetRoute(pb.SetRouteRequest(adapter_alias=aliases[role], stable_version="v0"), metadata=ADMIN_MD,
                           timeout=10)
        with pytest.raises(grpc.RpcError):  # refused before the engine sees it
            admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias=aliases["a"], version="v9",
                                                    path=f"{aliases['a']}/missing"), metadata=ADMIN_MD, timeout=60)
        producer = EventProducer(kafka_settings)
        producer.send_raw(PREDICTIONS.name, f"{run}-poison".encode(), b"\x00not a prediction", [])
        producer.flush(30)
        producer.close()

        # Before the questions, so that they precede any canary (which compares error rates).
        t_traffic = time.monotonic()
        _extras(stub, aliases["a"], random.Random(6))
        rng = random.Random(5)
        seen: set[str] = set()
        order = {part: i for i, part in enumerate(QUESTIONS)}
        plan = {role: sorted(_questions(rng, QUESTIONS, seen), key=lambda x: order[x[0]]) for role in OUTCOMES}
        with ThreadPoolExecutor(len(OUTCOMES)) as pool:
            sent = {role: pool.submit(_alias_traffic, stub, role, aliases[role], plan[role]) for role in OUTCOMES}
            corrections = {role: f.result() for role, f in sent.items()}
        assert corrections["a"] == corrections["d"] == WITH_CORRECTION, corrections
        assert not any(corrections["b"].values()), corrections
        assert min(corrections["c"].values()) >= 1 and corrections["c"]["train"] >= 10, corrections
        # The monitor raises a trigger per alias (its first window closes with the last question);
        # the retrainer runs them one by one. A's canary needs A's traffic: riders keep asking A
        # until A's run is over.
        with background_traffic(stub, aliases["a"]) as stop_a:
            _wait_outcomes(f"http://127.0.0.1:{ports['retrainer']}/metrics", aliases, live,
                           lambda role: stop_a.set() if role == "a" else None, timeout=300)
        # A now serves its promoted version; v0 is unloaded and its request series are gone with it.
        _extras(stub, aliases["a"], random.Random(7))
        print(f"services up after {live.ready_s:.0f}s; triggers → 4 outcomes in "
              f"{time.monotonic() - t_traffic:.0f}s")
        yield live


# -- the checks ------------------------------------------------------------------------------------------

def _missing(prom: Prometheus, alias: str) -> list[str]:
    out = []
    for e in all_expressions():
        full = render(e.expr, {"adapter_alias": alias})
        prom.query(full)  # the whole expression evaluates (empty is fine: an alert that does not fire)
        for operand in data_operands(full):
            if not prom.query(operand):
                out.append(f"{e.source} · {e.kind} {e.name}: no data for\n    {operand}")
    return out


def test_every_dashboard_query_and_alert_returns_data(live: Live) -> None:
    prom = live.prometheus
    targets = prom.api("/api/v1/targets")["activeTargets"]
    assert {t["labels"]["job"]: t["health"] for t in targets} == {
        "inference": "up", "monitor": "up", "retrainer": "up"}, targets
    # Series that appeared last need a few more scrapes before rate() and increase() have two samples.
    deadline = time.monotonic() + 30
    while (missing := _missing(prom, live.aliases["a"])) and time.monotonic() < deadline:
        time.sleep(2)
    assert not missing, "\n".join(missing)
    print(f"{len(all_expressions())} expressions, "
          f"{sum(len(data_operands(render(e.expr))) for e in all_expressions())} operands: all return data")


def test_analysis_template_queries_return_data(live: Live) -> None:
    """The AnalysisTemplate's queries select the live series: with A's serving version as both canary
    and stable, its error ratio increase is 0 and its p95 latency ratio 1."""
    prom = live.prometheus
    alias = live.aliases["a"]
    [info] = prom.query(f'driftloop_inference_adapter_version_info{{adapter_alias="{alias}", role="stable"}}')
    version = info["metric"]["version"]
    assert version != "v0", "A's candidate was promoted"
    args = {"adapter-alias": alias, "canary-version": version, "stable-version": version, "min-requests": "1"}
    values = {}
    for e in analysis_expressions():
        [sample] = prom.query(render_args(e.expr, args))
        values[e.name.split(" / ")[1]] = float(sample["value"][1])
    assert values == {"error-ratio-increase": 0.0, "p95-latency-ratio": 1.0}, values
    # the unloaded version's series are gone: the label only holds loaded versions
    gone = prom.query(f'driftloop_inference_requests_total{{adapter_alias="{alias}", adapter_version="v0"}}')
    assert not gone, gone


def _alert_rules(prom: Prometheus) -> dict[str, dict]:
    return {r["name"]: r for g in prom.api("/api/v1/rules", type="alert")["groups"] for r in g["rules"]}


def test_alert_rules_evaluate_on_live_data(live: Live) -> None:
    """Prometheus loaded every rule and evaluates it without error; the alerts without a `for` that
    the run provoked fire, and the one for lost events (none were lost) does not."""
    prom = live.prometheus
    rules = _alert_rules(prom)
    assert set(rules) == {e.name for e in all_expressions() if e.kind == "alert"}
    provoked = {"DriftloopRetrainFailed", "DriftloopGateRejected", "DriftloopCanaryRolledBack",
                "DriftloopDeadLettersGrowing"}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(rules[n]["state"] != "firing" for n in provoked):
        time.sleep(1)
        rules = _alert_rules(prom)
    bad = {name: r.get("lastError") for name, r in rules.items() if r["health"] != "ok"}
    assert not bad, bad
    assert {n: rules[n]["state"] for n in provoked} == dict.fromkeys(provoked, "firing")
    assert rules["DriftloopEventsDropped"]["state"] == "inactive"
    firing = {a["labels"]["adapter_alias"] for n in ("DriftloopRetrainFailed", "DriftloopGateRejected",
                                                     "DriftloopCanaryRolledBack") for a in rules[n]["alerts"]}
    assert firing == {live.aliases[r] for r in ("b", "c", "d")}, firing
