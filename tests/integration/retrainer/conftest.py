"""The loop's second half on real parts: a small transit base model served by the real vLLM engine,
the real broker, and the retrainer as a process."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from driftloop.demo import world
from driftloop.demo.base_model import BaseModelSpec
from driftloop.local.kafka import free_port
from driftloop.local.procs import ServiceProcess
from driftloop.local.tiny_model import make_lora
from driftloop.v1 import inference_pb2 as pb
from tests.integration.inference.conftest import ADMIN_MD, ADMIN_TOKEN, Server, start_server

SMALL = BaseModelSpec(hidden=128, layers=2, heads=4, intermediate=256, vocab=800, steps=500, batch=32)
ALIASES = ("transit-qa", "transit-bad", "transit-crash", "transit-steps")


@dataclass
class Loop:
    base: Path
    adapters: Path
    curated: Path
    server: Server
    state: Path


@pytest.fixture(scope="session")
def loop(kafka_broker, small_base_model, tmp_path_factory) -> Iterator[Loop]:
    root = tmp_path_factory.mktemp("loop")
    base = small_base_model
    adapters = root / "adapters"
    for alias in ALIASES:  # v0: a no-op LoRA (PEFT's B=0 init) standing for what serves today
        make_lora(base, adapters / alias / "v0", rank=8, scale=0.0, targets=("q_proj", "v_proj"))
    old = world.old_world(SMALL.world_seed)
    _, facts = world.new_world(old)
    unchanged = [q for q in world.all_qa(old) if (q.route, q.kind) not in facts and not q.held_out]
    # The agency's curated FAQ: every unchanged fact in its trained phrasings. With it as replay the
    # candidate forgets (almost) nothing, so these tests check the loop's mechanics, not an ML outcome
    # near a threshold (offline, 5 seeds × 1 and 2 threads: regression drop 0–0.022, corrections EM
    # 0.67–0.82 against serving's 0).
    curated = root / "curated.jsonl"
    curated.write_text("".join(json.dumps({"question": q.question, "answer": q.answer, "slice": q.kind}) + "\n"
                               for q in unchanged))
    env = {
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "DRIFTLOOP_INFERENCE_MODEL_PATH": str(base), "DRIFTLOOP_INFERENCE_MODEL_NAME": "transit-small",
        "DRIFTLOOP_INFERENCE_ADAPTER_ROOT": str(adapters), "DRIFTLOOP_INFERENCE_SPOOL_DIR": str(root / "spool"),
        "DRIFTLOOP_INFERENCE_PORT": str(free_port()), "DRIFTLOOP_INFERENCE_METRICS_PORT": str(free_port()),
        "DRIFTLOOP_INFERENCE_HTTP_PORT": str(free_port()),
        "DRIFTLOOP_INFERENCE_ADMIN_TOKEN": ADMIN_TOKEN, "DRIFTLOOP_INFERENCE_MAX_MODEL_LEN": "128",
        "DRIFTLOOP_INFERENCE_MAX_TOKENS_LIMIT": "32", "DRIFTLOOP_INFERENCE_DEFAULT_MAX_TOKENS": "24",
    }
    server = start_server("inference-loop", env, root / "inference.log")
    for alias in ALIASES:
        server.admin.LoadAdapter(pb.LoadAdapterRequest(adapter_alias=alias, version="v0", path=f"{alias}/v0"),
                                 metadata=ADMIN_MD, timeout=60)
        server.admin.SetRoute(pb.SetRouteRequest(adapter_alias=alias, stable_version="v0"), metadata=ADMIN_MD,
                              timeout=10)
    try:
        yield Loop(base, adapters, curated, server, root / "retrainer")
    finally:
        server.channel.close()
        server.process.stop()


def retrainer_env(loop: Loop, kafka_broker, group: str, **extra: str) -> dict[str, str]:
    return {
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap,
        "DRIFTLOOP_RETRAINER_GROUP_ID": group,
        "DRIFTLOOP_RETRAINER_BASE_MODEL": str(loop.base),
        "DRIFTLOOP_RETRAINER_ADAPTER_ROOT": str(loop.adapters),
        "DRIFTLOOP_RETRAINER_STATE_DIR": str(loop.state),
        "DRIFTLOOP_RETRAINER_CURATED_DATA": str(loop.curated),
        "DRIFTLOOP_RETRAINER_INFERENCE_ADDRESS": loop.server.grpc_address,
        "DRIFTLOOP_RETRAINER_INFERENCE_ADMIN_TOKEN": ADMIN_TOKEN,
        "DRIFTLOOP_RETRAINER_METRICS_PORT": "0",
        # Fixed threads (the engine's OpenMP thread spins on the other core: with 2 on 2 cores training
        # is ~9x slower); the outcome is the same with 1 and 2 (deterministic algorithms, measured offline).
        "DRIFTLOOP_RETRAINER_TRAIN_THREADS": os.environ.get("DRIFTLOOP_TEST_TRAIN_THREADS", "1"),
        # Gate: production defaults for the EM floor; the gain over serving (measured on held-out
        # corrections, where serving scores 0) and the regression drop with at least 2x room over
        # the spread measured offline (see the curated FAQ above).
        "DRIFTLOOP_RETRAINER_GATE_MIN_MARGIN": "0.3",
        "DRIFTLOOP_RETRAINER_GATE_MAX_REGRESSION_DROP": "0.05",
        # The 2-layer test model reads typos badly (perturbed EM 0.09-0.16 against 0.9-0.97 clean before
        # training-row augmentation; candidates' ratio 0.59-0.69 with it, one run): a floor would make these
        # tests hinge on that noise. The criterion is exercised by unit tests; here the loop's mechanics
        # are. Production default: 0.7.
        "DRIFTLOOP_RETRAINER_GATE_MIN_ROBUSTNESS_RATIO": "0.0",
        # ... so no augmentation either: it triples the training rows under the same 400-step cap, and this
        # 2-layer model then learns the corrections less well (CI 2026-12-06: held-out corrections EM 0.280
        # against the 0.3 margin, a rejection the chat test and the CLI test after it failed on; the small
        # demo test measured the same, 0.237 with it vs 0.537 without). The 4-layer demo model shows no
        # cost; augmentation runs there, in the faq-change demo test and in unit tests.
        "DRIFTLOOP_RETRAINER_AUGMENT_VARIANTS": "0",
        "DRIFTLOOP_RETRAINER_GATE_MAX_SLICE_GAP": "1.0",
        "DRIFTLOOP_RETRAINER_CANARY_WEIGHT": "0.5",
        "DRIFTLOOP_RETRAINER_CANARY_MIN_REQUESTS": "20",
        "DRIFTLOOP_RETRAINER_CANARY_MAX_WAIT_S": "90",
        # After a rejection the next attempt waits for new corrections; none come in these tests, so it
        # ends (skipped) in 5 s instead of blocking the next test's retrainer for 15 minutes.
        "DRIFTLOOP_RETRAINER_RETRY_WAIT_S": "5",
        **extra,
    }


def start_retrainer(loop: Loop, kafka_broker, group: str, name: str = "retrainer", **extra: str) -> ServiceProcess:
    proc = ServiceProcess(name, "driftloop.retrainer", retrainer_env(loop, kafka_broker, group, **extra),
                          loop.state.parent / f"{name}.log", args=("serve",))
    # ~10-40 s on an idle machine (start-up, consumer-group join). CI once saw a restart print nothing
    # for 120 s while the suite's two engines were busy; 240 s, and a failure now reports the child's
    # stack and the machine's load and memory (ServiceProcess.diagnose).
    proc.wait_ready(240)
    return proc
