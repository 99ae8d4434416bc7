"""Renders the demo report from ``timeline.json``: PNG plots (the loop over time, accuracy before and
after) and a markdown + HTML summary. Runs in the monitor environment (matplotlib lives there).

    python -m driftloop.demo.report artifacts/demo-report
"""

from __future__ import annotations

import html
import json
import sys
from collections import deque
from pathlib import Path

MARKS = {"world change": ("tab:red", "world changes"), "trigger (from the topic)": ("tab:orange", "trigger"),
         "retrainer: dataset done": ("tab:purple", "training starts"),
         "retrainer: training done": ("tab:brown", "gate starts"), ": canary": ("tab:olive", "canary"),
         ": promoted": ("tab:green", "promoted")}


def _marks(events: list[dict]) -> list[tuple[float, str, str]]:
    out = []
    for e in events:
        for key, (color, label) in MARKS.items():
            if key in e["event"]:
                out.append((e["t"], color, label))
    return out


def _series(samples: list[dict], name: str, **labels: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for s in samples:
        if s["name"] == name and all(s["labels"].get(k) == v for k, v in labels.items()):
            xs.append(s["t"])
            ys.append(s["value"])
    return xs, ys


def plot_loop(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    answers, samples, marks = data["answers"], data["samples"], _marks(data["events"])
    fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    ax = axes[0]
    window: deque = deque(maxlen=100)
    xs, acc, new_share = [], [], []
    for t, _phase, version, good in answers:
        window.append((good, version != "v0"))
        xs.append(t)
        acc.append(sum(g for g, _ in window) / len(window))
        new_share.append(sum(n for _, n in window) / len(window))
    ax.plot(xs, acc, color="tab:blue", label="answer accuracy (last 100 rider requests)")
    ax.plot(xs, new_share, color="tab:green", linestyle="--", label="share answered by the retrained adapter")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("share")
    ax.set_title("driftloop demo: the transit world changes, the loop detects, retrains, gates and swaps")

    threshold = {"color": "tab:gray", "linestyle": ":"}
    for ax, lines, unit in (
        (axes[1], [("driftloop_monitor_drift_statistic", "input_embedding", "input drift: MMD² of prompt embeddings",
                    {"color": "tab:blue"}),
                   ("driftloop_monitor_drift_statistic_threshold", "input_embedding",
                    "threshold (permutation quantile)", threshold)], "MMD²"),
        (axes[2], [("driftloop_monitor_rate", "negative_feedback_rate", "negative-feedback rate", {"color": "tab:red"}),
                   ("driftloop_monitor_rate_threshold", "negative_feedback_rate", "threshold", threshold),
                   ("driftloop_monitor_rate", "error_rate", "error rate", {"color": "black", "alpha": 0.6})], "ratio"),
    ):
        for name, detector, label, style in lines:
            ax.plot(*_series(samples, name, detector=detector), label=label, **style)
        ax.set_ylabel(unit)
    ax.set_xlabel("seconds since the demo started")
    for ax in axes:
        used: set[str] = set()
        for t, color, label in marks:
            ax.axvline(t, color=color, alpha=0.7, linewidth=1.2, label=label if label not in used else None)
            used.add(label)
        ax.legend(loc="upper left", fontsize=8, ncol=2)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_accuracy(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before, after = summary.get("eval_before_loop"), summary.get("eval_after_loop")
    if not before or not after:
        return
    fig, ax = plt.subplots(figsize=(6, 3.6))
    groups = ["changed", "unchanged"]
    b = [before[g]["accuracy"] for g in groups]
    a = [after[g]["accuracy"] for g in groups]
    xs = range(len(groups))
    ax.bar([x - 0.2 for x in xs], b, width=0.4, label=f"before the loop ({before['changed']['version']})",
           color="tab:gray")
    ax.bar([x + 0.2 for x in xs], a, width=0.4, label=f"after the loop ({after['changed']['version']})",
           color="tab:green")
    for x, v in zip(xs, b, strict=True):
        ax.text(x - 0.2, v + 0.02, f"{v:.0%}", ha="center", fontsize=9)
    for x, v in zip(xs, a, strict=True):
        ax.text(x + 0.2, v + 0.02, f"{v:.0%}", ha="center", fontsize=9)
    ax.set_xticks(list(xs), [f"{g} facts" for g in groups])
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("exact-match accuracy")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def _transport(st: dict, name: str) -> str:
    """Requests one transport answered and their accuracy ("0" when it carried none)."""
    n = st.get("by_transport", {}).get(name, 0)
    return f"{n}, {_pct(st.get('correct_by_transport', {}).get(name, 0) / n)}" if n else "0"


def _rounds(s: dict) -> list[str]:
    """Each round's promoted version (the monitor raised the rounds after the first) and the episode's end."""
    rounds = s.get("rounds")
    if not rounds:
        return []
    lines = ["### Rounds", "", "| round | version | changed facts | unchanged facts |", "|---|---|---|---|"]
    for r in rounds:
        lines.append(f"| {r['round']} | {r['version']} | {_pct(r['eval']['changed']['accuracy'])} | "
                     f"{_pct(r['eval']['unchanged']['accuracy'])} |")
    return [*lines, "", f"Episode: {s.get('episode_end', '?')} (the monitor's verdict: back to the pre-change "
            "negative-feedback rate, or out of rounds).", ""]


def _by_slice(before: dict, after: dict | None) -> list[str]:
    """Accuracy by slice (the labels the monitor and the gate use: question kind, guessed language),
    changed and unchanged facts, before and after the loop."""
    labels = sorted({k for g in ("changed", "unchanged") for k in before[g].get("by_slice", {})})
    if not labels:
        return []

    def cell(ev: dict | None, g: str, label: str) -> str:
        x = (ev or {}).get(g, {}).get("by_slice", {}).get(label)
        return f"{_pct(x['accuracy'])} ({x['n']})" if x else "–"

    lines = ["### By slice", "", "| slice | changed before | changed after | unchanged before | unchanged after |",
             "|---|---|---|---|---|"]
    for label in labels:
        lines.append(f"| {label} | {cell(before, 'changed', label)} | {cell(after, 'changed', label)} | "
                     f"{cell(before, 'unchanged', label)} | {cell(after, 'unchanged', label)} |")
    return [*lines, "", "(questions in each cell in brackets; a question is in its kind's slice and its "
            "language's)", ""]


def markdown(data: dict) -> str:
    s = data["summary"]
    lines = ["# driftloop demo report", "", f"**Result: {s.get('result', '?')}** — wall time "
             f"{s.get('wall_seconds', 0):.0f} s.", "", "![the loop over time](loop.png)", ""]
    b, a = s.get("eval_before_loop"), s.get("eval_after_loop")
    if b:
        lines += ["## Accuracy (exact match, same questions, versions pinned)", "",
                  "| facts | before the loop | after the loop | change |", "|---|---|---|---|"]
        for g in ("changed", "unchanged"):
            before = b[g]["accuracy"]
            after = a[g]["accuracy"] if a else None
            delta = f"{(after - before) * 100:+.1f} pts" if after is not None else "–"
            lines.append(f"| {g} ({b[g]['n']} questions) | {_pct(before)} | {_pct(after)} | {delta} |")
        lines += ["", "Targets: changed below 30 % before and at least 85 % after; unchanged may drop at most "
                  "2 points.", ""]
        lines += _by_slice(b, a)
        lines += _rounds(s)
        if a:
            lines += ["![accuracy](accuracy.png)", ""]
    t = s.get("trigger")
    if t:
        lines += ["## Detection", "", f"- Trigger {t['created_s_after_change']:.0f} s after the world change: "
                  f"{t['reason']}", f"- Episode evidence: {t['predictions']} predictions, {t['feedback']} "
                  f"feedback ({t['negative_feedback']} negative)"]
        for e in t["signals"]:
            p = f", p={e['p_value']:.3g}" if e.get("p_value") is not None else ""
            lines.append(f"  - {e['signal']}: statistic {e['statistic']:.4g} vs threshold {e['threshold']:.4g}{p}")
        lines.append("")
    v = s.get("version")
    if v:
        hist = {h["status"]: h["time"] for h in v["history"]}
        lines += ["## Retraining", "", f"- Version **{v['name']}**: " + " → ".join(
            f"{st}" for st in hist), f"- Dataset: {v['dataset'].get('corrections')} corrections, "
            f"{v['dataset'].get('confirmed')} confirmed answers, {v['dataset'].get('curated')} curated, "
            f"{v['dataset'].get('replay')} replay; cleaning: {v['dataset'].get('summary')}",
            "- Stale rows dropped (a correction contradicts them; listed in the run's `stale.jsonl`): "
            + (", ".join(f"{k} {n}" for k, n in v["dataset"].get("stale", {}).items()) or "none"),
            *[f"  - {x['source']} \"{x['question']}\" → \"{x['answer']}\" ({x['evidence']} by "
              f"\"{x['correction_question']}\" → \"{x['correction_answer']}\", similarity {x['similarity']:.2f})"
              for x in v["dataset"].get("stale_examples", [])],
            f"- Training: {v['training']}", "", "### Gate", "", "```", v["gate_summary"], "```", ""]
    lines += ["## Timeline", "", "| t (s) | event | detail |", "|---|---|---|"]
    for e in data["events"]:
        lines.append(f"| {e['t']:.0f} | {e['event']} | {e['detail'].replace('|', '/')} |")
    traffic = [(k, s[k]) for k in ("traffic_before", "traffic_after", "traffic_settled") if k in s]
    if traffic:
        lines += ["", "## Rider traffic", "", "| phase | requests | accuracy | rated | negative | corrections "
                  "| gRPC: answered, accuracy | OpenAI HTTP: answered, accuracy |", "|---|---|---|---|---|---|---|---|"]
        r = s.get("riders")
        if r:
            how = (f"a chat (system prompt \"{r['system_prompt']}\", then the question as the user turn)"
                   if r["system_prompt"] else "a chat (the question as the user turn)") \
                if r["format"] == "chat" else "a raw prompt"
            lines[-2:-2] = [f"Riders ask as {how}; {_pct(r['http_share'])} of them through the OpenAI-compatible "
                            "endpoint, the rest over gRPC.", ""]
        for k, st in traffic:
            lines.append(f"| {k.removeprefix('traffic_')} | {st['requests']} | {_pct(st['accuracy'])} | "
                         f"{st['feedback']} | {st['negative']} | {st['corrections']} | {_transport(st, 'grpc')} | "
                         f"{_transport(st, 'http')} |")
    bm = s.get("base_model")
    if bm:
        q = bm["quality"]
        lines += ["", "## Base model", "", f"{bm['parameters']:,} parameters, trained in {bm['train_seconds']:.0f} s "
                  f"(this run: {bm['seconds_this_run']:.0f} s, cached when unchanged); exact match on trained "
                  f"phrasings {_pct(q['trained_phrasings']['exact_match'])}, on held-out phrasings "
                  f"{_pct(q['held_out_phrasings']['exact_match'])}."]
        if "trained_phrasings_app_system" in q:
            lines[-1] += (" Behind the demo app's system prompt (one it was never trained with): "
                          f"{_pct(q['trained_phrasings_app_system']['exact_match'])} and "
                          f"{_pct(q['held_out_phrasings_app_system']['exact_match'])}.")
    return "\n".join(lines) + "\n"


def to_html(md: str) -> str:
    """A plain page of the same content (images, headings, tables, code)."""
    out, in_code, in_table = [], False, False
    for line in md.splitlines():
        if line.startswith("```"):
            out.append("</pre>" if in_code else "<pre>")
            in_code = not in_code
            continue
        if in_code:
            out.append(html.escape(line))
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-"):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("!["):
            alt, src = line[2:].split("](")
            out.append(f'<img alt="{html.escape(alt)}" src="{html.escape(src.rstrip(")"))}" style="max-width:100%">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line).replace('**', '')}</p>")
    if in_table:
        out.append("</table>")
    style = "body{font-family:sans-serif;max-width:1000px;margin:2em auto}td{border:1px solid #ccc;padding:3px 8px}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>driftloop demo</title><style>{style}</style>" \
           f"</head><body>\n" + "\n".join(out) + "\n</body></html>\n"


def render(out: Path) -> None:
    data = json.loads((out / "timeline.json").read_text())
    plot_loop(data, out / "loop.png")
    plot_accuracy(data["summary"], out / "accuracy.png")
    md = markdown(data)
    (out / "report.md").write_text(md)
    (out / "report.html").write_text(to_html(md))


if __name__ == "__main__":
    render(Path(sys.argv[1] if len(sys.argv) > 1 else "artifacts/demo-report"))

