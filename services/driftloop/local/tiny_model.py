"""A tiny random-weight Llama with a trained BPE tokenizer, in Hugging Face format, for tests and
benchmarks of the serving path (the demo trains a real small base model instead).

    python -m driftloop.local.tiny_model OUT_DIR [--hidden 64 --layers 2]

Loads in transformers and vLLM (CPU builds need head_dim in vLLM's supported set, e.g. 32).
Also makes random LoRA adapters for it with PEFT (``make_lora``).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from driftloop.core.chat import QA_CHAT_TEMPLATE

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def _corpus(n_lines: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    subj = ["the bus", "a rider", "the train", "route 12", "the depot", "a driver", "the tram", "line 4"]
    verb = ["leaves", "reaches", "stops at", "runs to", "skips", "serves", "waits at", "passes"]
    obj = ["the station", "main street", "the airport", "the harbour", "city hall", "the park", "the mall"]
    tail = ["every ten minutes", "at night", "on sundays", "after noon", "twice an hour", "until late"]
    return [f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)} {rng.choice(tail)}." for _ in range(n_lines)]


def build(out_dir: Path, hidden: int = 64, layers: int = 2, heads: int = 2, vocab: int = 384,
          max_positions: int = 1024, seed: int = 0, chat_template: str | None = QA_CHAT_TEMPLATE) -> Path:
    """``chat_template``: stored with the tokenizer (None: a model without one)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(_corpus(400, seed), trainer=trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=SPECIALS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                            special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", model_max_length=max_positions,
                                   clean_up_tokenization_spaces=False)
    fast.chat_template = chat_template
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, head_dim=hidden // heads,
        max_position_embeddings=max_positions, rms_norm_eps=1e-6, bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    with torch.no_grad():  # larger init so greedy outputs differ across prompts
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    fast.save_pretrained(out_dir)
    _patch_json(out_dir / "tokenizer_config.json", tokenizer_class="PreTrainedTokenizerFast")
    _patch_json(out_dir / "config.json", torch_dtype="float32", dtype="float32")
    return out_dir


def _patch_json(path: Path, **values: str) -> None:
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data, indent=2))


def make_lora(base_dir: Path, out_dir: Path, rank: int = 8, seed: int = 1, scale: float = 0.3,
              targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")) -> Path:
    """A random (non-zero) LoRA adapter for ``base_dir``, saved with PEFT's save_pretrained."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                                            target_modules=list(targets), task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.normal_(0.0, scale)
    model.save_pretrained(out_dir, safe_serialization=True)
    return Path(out_dir)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    a = ap.parse_args()
    print(build(a.out_dir, hidden=a.hidden, layers=a.layers))


if __name__ == "__main__":
    main()
