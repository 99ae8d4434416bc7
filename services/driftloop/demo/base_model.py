"""Builds the demo's base model: a BPE tokenizer and a small Llama trained on the *old* transit
world, saved in Hugging Face format (loadable by vLLM and transformers). Cached: rebuilt only when
its inputs (world seed, hyperparameters, this file) change. Records its own quality.

    python -m driftloop.demo.base_model [--out artifacts/base-model] [--force]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from driftloop.core.chat import QA_CHAT_TEMPLATE
from driftloop.demo import world
from driftloop.retrainer.prompts import PROMPT_TEMPLATE
from driftloop.retrainer.train import collate, encode_pairs, greedy_answers

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


@dataclass(frozen=True)
class BaseModelSpec:
    world_seed: int = 7
    vocab: int = 1200
    hidden: int = 192
    layers: int = 4
    heads: int = 6  # head_dim 32: a size vLLM's CPU attention supports
    intermediate: int = 512
    max_positions: int = 128
    steps: int = 400
    batch: int = 48
    lr: float = 3e-3
    seed: int = 0
    # share of the training questions that also appear behind an app's system prompt (one drawn from
    # world.system_prompts()): applications chat with a system prompt, so the base model must answer
    # the same with one as without
    system_share: float = 0.5

    def digest(self) -> str:
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode())
        h.update(Path(__file__).read_bytes())
        h.update(Path(world.__file__).read_bytes())
        return h.hexdigest()[:16]


def training_text(qa: world.QA, system: str = "") -> tuple[str, str]:
    """A training row's prompt and target. With ``system``, the prompt is what the chat template
    (``QA_CHAT_TEMPLATE``) renders for that system prompt and the question as the user turn."""
    return (f"{system}\n" if system else "") + world.prompt(qa.question), " " + qa.answer


def training_pairs(train: list[world.QA], share: float, rng: random.Random) -> list[tuple[str, str]]:
    """Every training question as a raw prompt, and ``share`` of them again behind an app's system prompt."""
    systems = world.system_prompts()
    return [training_text(q) for q in train] + [training_text(q, rng.choice(systems))
                                                for q in train if rng.random() < share]


def build_tokenizer(texts: list[str], vocab: int, max_positions: int):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainer=trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                            special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", model_max_length=max_positions,
                                   clean_up_tokenization_spaces=False)


def evaluate(model, tok, qas: list[world.QA], system: str = "") -> dict[str, float]:
    template = (f"{system}\n" if system else "") + PROMPT_TEMPLATE
    got = greedy_answers(model, tok, [q.question for q in qas], template=template, max_new_tokens=24)
    hits = [g == q.answer for g, q in zip(got, qas, strict=True)]
    by_kind: dict[str, list[bool]] = {}
    for q, h in zip(qas, hits, strict=True):
        by_kind.setdefault(q.kind, []).append(h)
    return {"exact_match": sum(hits) / len(hits), "n": len(hits),
            **{f"exact_match_{k}": sum(v) / len(v) for k, v in sorted(by_kind.items())}}


def build(out: Path, spec: BaseModelSpec = BaseModelSpec(), force: bool = False, log=print) -> Path:
    info_path = out / "build-info.json"
    digest = spec.digest()
    if not force and info_path.exists() and json.loads(info_path.read_text()).get("digest") == digest:
        log(f"base model up to date in {out} ({digest})")
        return out
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    t0 = time.perf_counter()
    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)
    routes = world.old_world(spec.world_seed)
    qas = world.all_qa(routes)
    train = [q for q in qas if not q.held_out]
    held = [q for q in qas if q.held_out]
    pairs = training_pairs(train, spec.system_share, rng)
    # the tokenizer learns from each question once (system prompts once each, not once per row)
    tok = build_tokenizer([p + t for p, t in map(training_text, train)] + [q.question for q in held]
                          + world.system_prompts(), spec.vocab, spec.max_positions)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=spec.hidden, intermediate_size=spec.intermediate,
                         num_hidden_layers=spec.layers, num_attention_heads=spec.heads,
                         num_key_value_heads=spec.heads, head_dim=spec.hidden // spec.heads,
                         max_position_embeddings=spec.max_positions, rms_norm_eps=1e-5,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    rows = encode_pairs(tok, pairs, spec.max_positions)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=0.01)
    warmup = 100
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / spec.steps))))
    model.train()
    for step in range(spec.steps):
        ids, labels, mask = collate(rng.sample(rows, spec.batch), tok.pad_token_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 200 == 0 or step == spec.steps - 1:
            log(f"  step {step:5d}/{spec.steps} loss {loss.item():.4f} ({time.perf_counter() - t0:.0f}s)")
    train_seconds = time.perf_counter() - t0
    eval_rng = random.Random(1)
    trained, unseen = eval_rng.sample(train, 300), eval_rng.sample(held, 300)
    quality = {
        "trained_phrasings": evaluate(model, tok, trained),
        "held_out_phrasings": evaluate(model, tok, unseen),
        # behind the demo app's system prompt, which names an agency the model was never trained with
        "trained_phrasings_app_system": evaluate(model, tok, trained, world.APP_SYSTEM_PROMPT),
        "held_out_phrasings_app_system": evaluate(model, tok, unseen, world.APP_SYSTEM_PROMPT),
    }
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    tc = json.loads((out / "tokenizer_config.json").read_text())
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    tc["chat_template"] = QA_CHAT_TEMPLATE  # one user turn renders exactly as world.prompt
    tc["padding_side"] = "right"
    (out / "tokenizer_config.json").write_text(json.dumps(tc, indent=2))
    info = {"digest": digest, "spec": asdict(spec), "train_seconds": round(train_seconds, 1),
            "parameters": sum(p.numel() for p in model.parameters()), "quality": quality,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    info_path.write_text(json.dumps(info, indent=2))
    log(f"base model built in {time.perf_counter() - t0:.0f}s: {json.dumps(quality)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("artifacts/base-model"))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--steps", type=int, default=BaseModelSpec.steps)
    a = ap.parse_args()
    build(a.out, BaseModelSpec(steps=a.steps), force=a.force)


if __name__ == "__main__":
    main()
