"""Settings of ``make demo``. Environment prefix ``DRIFTLOOP_DEMO_``. The services keep their own
settings classes; the demo passes them what it chooses here (sized for a 2-core machine)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftloop.demo import world
from driftloop.retrainer.prompts import PromptFormat

REPO_ROOT = Path(__file__).resolve().parents[3]


class DemoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_DEMO_", extra="forbid")

    run_dir: Path = Field(REPO_ROOT / ".run" / "demo", description="Broker data, service state and logs (wiped "
                          "at the start of each run).")
    report_dir: Path = Field(REPO_ROOT / "artifacts" / "demo-report", description="Where the report is written.")
    base_model_dir: Path = Field(REPO_ROOT / "artifacts" / "base-model", description="Base model (built if stale).")
    monitor_python: Path = Field(REPO_ROOT / ".venvs" / "monitor" / "bin" / "python",
                                 description="Interpreter of the monitor environment (monitor and report plots).")
    prometheus: Path = Field(REPO_ROOT / ".tools" / "bin" / "prometheus",
                             description="A Prometheus binary; started to scrape the services when present.")
    alias: str = Field("transit-qa", description="Adapter alias the application calls.")
    model_name: str = Field("transit-base", description="Model name in events and metrics.")
    seed: int = Field(3, description="Seed of the riders and the evaluation sets.")
    scenario: Literal["schedules", "faq-change", "big-change"] = Field(
        "schedules", description="The world change: 'schedules' (new timetables, detours, new routes), "
        "'faq-change' (terminals and first departures change: facts the curated FAQ holds go stale) or "
        "'big-change' (98 new facts, more than one round of corrections covers: the demo follows the "
        "monitor's follow-up rounds until back to normal).")
    rounds_max_s: float = Field(2700.0, gt=0, description="big-change: longest the demo waits, after a "
                                "promotion, for the next round's promotion or the monitor's 'back to normal'.")

    # traffic
    chat: bool = Field(True, description="Riders ask as a chat app does (messages: SYSTEM_PROMPT if set, then the "
                       "question as the user turn); the retrainer trains and gates in that format (PROMPT_FORMAT "
                       "chat). False: raw prompts over gRPC.")
    system_prompt: str = Field(world.APP_SYSTEM_PROMPT, description="The riders' app's system prompt (chat): the "
                               "system turn before each question, also in training rows and the gate. The base "
                               "model was trained with app system prompts, never with this one. Empty: no "
                               "system turn.")
    http_share: float = Field(0.3, ge=0, le=1, description="Share of riders' requests (and their feedback) sent to "
                              "the OpenAI-compatible HTTP endpoint with the openai SDK; the rest go over gRPC.")
    concurrency: int = Field(4, ge=1, description="Riders asking at the same time.")
    before_requests: int = Field(600, ge=100, description="Requests in the old world (the monitor's reference "
                                 "set comes from the first of them).")
    rate: float = Field(8.0, ge=0, description="Requests per second of the riders (0: as fast as they "
                              "can); quieter while the adapter trains and is gated.")
    training_rate: float = Field(1.0, gt=0, description="Requests per second while the adapter trains and is "
                                 "gated: on a small machine the engine, the trainer and the gate share the CPU.")
    after_max_s: float = Field(900.0, gt=0, description="Longest the changed world runs while waiting for "
                               "the loop to promote a new version.")
    settle_requests: int = Field(500, ge=0, description="Requests after the promotion (the new normal).")
    colloquial_before: float = Field(0.3, ge=0, le=1, description="Share of colloquial phrasing before the change.")
    colloquial_after: float = Field(0.6, ge=0, le=1, description="Share of colloquial phrasing after the change.")
    focus_after: float = Field(0.5, ge=0, le=1, description="Share of post-change questions about what changed.")
    feedback_share: float = Field(0.7, ge=0, le=1, description="Share of answers riders rate.")
    correction_share: float = Field(0.7, ge=0, le=1, description="Share of rated wrong answers that come with "
                                    "the correct answer.")
    eval_size: int = Field(300, ge=50, description="Questions per evaluation set (changed / unchanged facts).")
    curated_rows: int = Field(400, ge=0, description="Rows of the agency's curated FAQ given to the retrainer.")

    def prompt(self) -> PromptFormat:
        """How riders, the evaluation and the retrainer put a question to the model."""
        return PromptFormat("chat" if self.chat else "template", system_prompt=self.system_prompt)
