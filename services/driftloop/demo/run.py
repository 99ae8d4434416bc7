"""``make demo``: the whole loop on the transit world, on this machine, with no human step.

1. Build (or reuse) the base model trained on the *old* world; write the agency's curated FAQ.
2. Start a real Kafka broker, the inference service (vLLM), the monitor, the retrainer and, when
   present, a real Prometheus scraping all three (driftloop.demo.stack; what each service is given:
   driftloop.demo.services).
3. Riders ask about the old world and rate answers; the monitor builds its reference.
4. The world changes (new schedules, detours, new routes, more colloquial riders). The served model
   is now wrong on the changed part; riders say so and send corrections (driftloop.demo.scenario).
5. The loop runs by itself: the monitor detects drift and raises a trigger, the retrainer cleans the
   fresh data, trains a LoRA adapter, gates it through the engine, rolls it out as a canary and
   promotes it. The demo only waits (bounded) and watches the services' metrics
   (driftloop.demo.observer).
6. Accuracy on changed and unchanged facts is measured before and after; everything stops and the
   report (timeline plots + markdown/HTML summary) is written (driftloop.demo.outcome, .report).

    python -m driftloop.demo            # what `make demo` runs
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from driftloop.demo import outcome, services, world
from driftloop.demo.base_model import BaseModelSpec, build
from driftloop.demo.observer import Observer
from driftloop.demo.scenario import ChangedWorld, Scenario, write_curated
from driftloop.demo.settings import DemoSettings
from driftloop.demo.simulator import Riders, evaluate
from driftloop.demo.stack import Stack
from driftloop.demo.timeline import Timeline
from driftloop.local.ports import free_port
from driftloop.local.procs import ServiceProcess
from driftloop.retrainer.registry import Registry, Version
from driftloop.v1 import inference_pb2 as pb
from driftloop.v1 import inference_pb2_grpc


class Demo:
    def __init__(self, s: DemoSettings, spec: BaseModelSpec | None = None,
                 overrides: dict[str, dict[str, Any]] | None = None, stack: Stack | None = None) -> None:
        """``spec`` and ``overrides`` ({service: {settings field: value}}) let tests run a smaller loop."""
        self.s = s
        self.spec = spec or BaseModelSpec()
        self.overrides = overrides or {}
        self.t0 = time.time()
        self.timeline = Timeline(self.t0)
        self.stack = stack or Stack(s.run_dir)
        self.adapters = s.run_dir / "adapters"
        self.stop_sampling = threading.Event()
        self.stop_traffic = threading.Event()
        self.summary: dict = {}
        self.answers: list = []

    @property
    def procs(self) -> list[ServiceProcess]:
        return self.stack.procs

    # -- setup -------------------------------------------------------------------------------------
    def setup(self) -> None:
        self._prepare_files()
        self.kafka = self.stack.start_broker()
        self.timeline.event("broker ready", self.kafka.bootstrap_servers)
        targets = self._start_services()
        self.timeline.event("services ready", ", ".join(f"{k} {v}" for k, v in targets.items()))
        self._start_prometheus(targets)
        self.observer = Observer(self.timeline, targets, self.s.alias)
        self.observer.start(self.stop_sampling)
        self._serve_v0()

    def _prepare_files(self) -> None:
        s = self.s
        shutil.rmtree(s.run_dir, ignore_errors=True)
        s.run_dir.mkdir(parents=True)
        t = time.time()
        build(s.base_model_dir, self.spec, log=lambda m: print(m, flush=True))
        info = json.loads((s.base_model_dir / "build-info.json").read_text())
        self.summary["base_model"] = {"seconds_this_run": round(time.time() - t, 1), **info}
        self.timeline.event("base model ready", f"{info['parameters']:,} parameters; held-out phrasing EM "
                            f"{info['quality']['held_out_phrasings']['exact_match']:.2f}")
        write_curated(s.run_dir / "curated.jsonl", s.curated_rows, s.seed, self.spec.world_seed)
        from driftloop.local.tiny_model import make_lora

        make_lora(s.base_model_dir, self.adapters / s.alias / "v0", rank=8, scale=0.0, targets=("q_proj", "v_proj"))

    def _start_services(self) -> dict[str, str]:
        """Inference and monitor start together; the retrainer once inference answers. Returns the
        metrics URL of each service."""
        s, kafka, extra = self.s, self.kafka, self.overrides
        inference = self.stack.start("inference", "driftloop.inference", services.inference(
            s, kafka, self.adapters, free_port(), free_port(), **extra.get("inference", {})))
        monitor = self.stack.start("monitor", "driftloop.monitor", services.monitor(
            s, kafka, **extra.get("monitor", {})), python=str(s.monitor_python))
        ready_inference = inference.wait_ready(300)
        self.channel = grpc.insecure_channel(ready_inference["grpc"])
        self.http_base = f"http://{ready_inference['http']}/v1" if ready_inference.get("http") else ""
        grpc.channel_ready_future(self.channel).result(timeout=30)
        ready_monitor = monitor.wait_ready(300)
        retrainer = self.stack.start("retrainer", "driftloop.retrainer", services.retrainer(
            s, kafka, self.adapters, ready_inference["grpc"], **extra.get("retrainer", {})), args=("serve",))
        ready_retrainer = retrainer.wait_ready(300)
        return {"inference": f"http://{ready_inference['metrics']}/metrics",
                "monitor": f"http://{ready_monitor['metrics']}/metrics",
                "retrainer": f"http://{ready_retrainer['metrics']}/metrics"}

    def _start_prometheus(self, targets: dict[str, str]) -> None:
        if not self.s.prometheus.exists():
            self.timeline.event("prometheus skipped", f"{self.s.prometheus} not found (make deploy-tools builds it)")
            return
        url = self.stack.start_prometheus(self.s.prometheus, targets)
        self.summary["prometheus"] = url
        self.timeline.event("prometheus", f"{url} (scraping every 5 s)")

    def _serve_v0(self) -> None:
        s, admin = self.s, inference_pb2_grpc.AdapterAdminStub(self.channel)
        admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias=s.alias, version="v0", path=f"{s.alias}/v0"),
                          metadata=services.ADMIN_MD, timeout=120)
        admin.SetRoute(pb.SetRouteRequest(adapter_alias=s.alias, stable_version="v0"), metadata=services.ADMIN_MD,
                       timeout=30)
        self.timeline.event("serving", f"{s.alias} → v0 (the base model as trained on the old world)")

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> dict:
        s = self.s
        riders = Riders(self.channel, s.alias, s.seed, s.concurrency, s.feedback_share, s.correction_share,
                        s.prompt(), self.http_base, s.http_share)
        self.answers = riders.log
        self.summary["riders"] = {"format": s.prompt().kind, "system_prompt": s.prompt().system_prompt,
                                  "http_share": s.http_share}
        scenario = Scenario(s, self.spec.world_seed, riders, self._evaluate, self.timeline)
        self.summary["traffic_before"] = scenario.old_world().to_dict()
        self.summary["eval_before_loop"] = scenario.accuracy("v0")  # what v0 knows of the world to come
        self.timeline.event("accuracy before the loop", outcome.accuracy_line(self.summary["eval_before_loop"]))
        change_t = time.time()
        scenario.change()
        traffic = scenario.changed_world(self.stop_traffic, self._rate)
        self._wait_for_outcome(traffic)
        if s.scenario in world.ROUNDS and self.observer.promotions():
            self._follow_rounds(scenario, traffic)  # riders keep asking: the monitor judges each round
        self.summary["traffic_after"] = traffic.end().to_dict()
        final = self._record_outcome(change_t)
        if final is None or final.status != "promoted":
            status = final.status if final else f"nothing promoted within {s.after_max_s:.0f}s"
            self.summary["result"] = f"loop did not promote: {status}"
            self.timeline.event("loop ended without promotion", status)
            return self.summary
        self.summary["version"] = outcome.version_summary(final)
        rounds = self.summary.get("rounds", [])
        self.summary["eval_after_loop"] = rounds[-1]["eval"] if rounds and rounds[-1]["version"] == final.version \
            else scenario.accuracy(final.version)
        self.timeline.event("accuracy after the loop", outcome.accuracy_line(self.summary["eval_after_loop"]))
        if s.settle_requests:
            self.summary["traffic_settled"] = scenario.settle(final.version).to_dict()
            time.sleep(8)  # the monitor's last windows reach the timeline before everything stops
        met = outcome.targets_met(self.summary["eval_before_loop"], self.summary["eval_after_loop"])
        self.summary["result"] = "targets met" if met else "targets NOT met"
        return self.summary

    def _evaluate(self, version: str, questions: Sequence[world.QA]) -> dict:
        s = self.s
        return evaluate(self.channel, s.alias, version, questions, s.concurrency, services.ADMIN_MD, s.prompt())

    def _rate(self) -> float:
        """Riders' pace: quieter while the adapter trains and is gated (here the engine, the trainer
        and the gate's evaluation share two cores; in production the retrainer has its own machine)."""
        return self.s.training_rate if self.observer.training() else self.s.rate

    def _wait_for_outcome(self, traffic: ChangedWorld) -> str | None:
        """Until a run ends promoted, rejected or rolled back (bounded by ``after_max_s``)."""
        deadline = time.monotonic() + self.s.after_max_s
        last_report = 0.0
        while time.monotonic() < deadline:
            self.observer.progress()
            result = self.observer.outcome()
            if result is not None:
                return result
            if time.monotonic() - last_report > 20:
                last_report = time.monotonic()
                print(traffic.line(), flush=True)
            time.sleep(1)
        return None

    def _follow_rounds(self, scenario: Scenario, traffic: ChangedWorld) -> None:
        """After the first promotion: each round's promoted version measured, until the monitor says the
        episode is back to normal or out of rounds (bounded by ``rounds_max_s``). The demo decides
        nothing: the monitor raises the rounds, the retrainer trains and releases them."""
        rounds: list[dict] = []
        self.summary["rounds"] = rounds
        deadline = time.monotonic() + self.s.rounds_max_s
        last_report = 0.0
        while time.monotonic() < deadline:
            self.observer.progress()
            serving = Registry(self.adapters).serving(self.s.alias)
            if self.observer.promotions() > len(rounds) and serving is not None:
                version = serving.version
                ev = scenario.accuracy(version)
                rounds.append({"round": len(rounds) + 1, "version": version, "eval": ev})
                self.timeline.event(f"round {len(rounds)}: {version} promoted", outcome.accuracy_line(ev))
                continue
            end = self.observer.episode_end()
            if end is not None:
                self.summary["episode_end"] = end
                self.timeline.event(f"monitor: episode {end}", f"after {len(rounds)} round(s)")
                return
            if time.monotonic() - last_report > 20:
                last_report = time.monotonic()
                print(traffic.line() + f"; rounds promoted {len(rounds)}", flush=True)
            time.sleep(1)
        self.summary["episode_end"] = f"still followed up after {self.s.rounds_max_s:.0f} s"

    def _record_outcome(self, change_t: float) -> Version | None:
        """The trigger and the versions the loop produced, on the timeline and in the summary."""
        trigger = outcome.record_trigger(self.timeline, outcome.read_triggers(self.kafka, change_t - 5), change_t)
        if trigger is not None:
            self.summary["trigger"] = trigger
        return outcome.record_versions(self.timeline, Registry(self.adapters).versions(self.s.alias))

    def shutdown(self) -> None:
        self.stop_sampling.set()
        self.stop_traffic.set()
        self.stack.stop()

    def write(self) -> Path:
        out = self.s.report_dir
        out.mkdir(parents=True, exist_ok=True)
        self.summary["wall_seconds"] = round(time.time() - self.t0, 1)
        answers = [[round(t - self.t0, 2), phase, version, int(good)] for t, phase, version, good in self.answers]
        data = {"summary": self.summary, "events": self.timeline.sorted_events(), "samples": self.timeline.samples,
                "answers": answers, "settings": json.loads(self.s.model_dump_json())}
        (out / "timeline.json").write_text(json.dumps(data, indent=1, default=str))
        rendered = subprocess.run([str(self.s.monitor_python), "-m", "driftloop.demo.report", str(out)],
                                  capture_output=True, text=True)
        if rendered.returncode != 0:
            print(rendered.stdout + rendered.stderr, file=sys.stderr)
        return out


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    demo = Demo(DemoSettings())
    try:
        demo.setup()
        summary = demo.run()
    except KeyboardInterrupt:
        demo.summary["result"] = "interrupted"
        summary = demo.summary
    except Exception as exc:
        demo.summary["result"] = f"failed: {type(exc).__name__}: {exc}"
        demo.timeline.event("demo failed", str(exc)[:300])
        summary = demo.summary
        for name, tail in demo.stack.log_tails(20).items():
            print(f"--- {name} log tail ---\n{tail}", file=sys.stderr)
    finally:
        demo.shutdown()
    out = demo.write()
    print(f"\nresult: {summary.get('result')}; report: {out / 'report.md'} (and report.html, *.png); "
          f"wall {summary.get('wall_seconds')}s")
    return 0 if summary.get("result") == "targets met" else 1


if __name__ == "__main__":
    raise SystemExit(main())
