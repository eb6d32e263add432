"""Training speed and memory: our commands as a user runs them, against PyTorch and against
our own other settings, side by side in one run (`nox -s bench -- distill`). Parts (`--parts`):

- phases: `tinybert-finetune` and `tinybert-td` (phase 1, then phase 2 on the teacher logits
  phase 1 hands over) on `--steps` batches of SST-2 train (32 rows, seq 64), all-MiniLM-L6-v2
  teacher, TinyBERT-4 student (one step of `tinybert-gd`: random), with length buckets (the
  default) and with `--length_buckets false` (fixed padding, the model zoo's); beside them
  phase 1's step in PyTorch 2.13 with transformers' BERT (eager attention, returning the hidden
  states and attention maps the losses need as the original TinyBERT code's model does; its
  maps are probabilities, not scores: the same work), padded to 64 and to each batch's longest
  row.
- gd: `tinybert-gd` on route B's corpus (the wiki sample and SST-2's train sentences packed
  to 128), TinyBERT-4 from the MiniLM teacher (or a random BERT-base-size one, `--gd_teacher
  bert-base`), batch `--gd_batch`: with today's defaults (`ours`, `--gd_steps` steps), with the
  defaults before issue 31 (`ours_before`: `--gradient_accumulation_steps 1 --length_buckets
  true`) and the same step in PyTorch (`torch`: teacher under no_grad, fit_dense, AdamW), the
  others at most 100 steps: peak RSS, RSS by step (at step 20 and while the last step runs,
  before the final model is written), time a step.

Every run is a process of its own, its RSS sampled ten times a second. Examples/s come from each
run's metrics.jsonl (the PyTorch runs write the same lines), steps taking over 10x the median
left out: those compile a graph (one per length bucket), which a full run pays once. Results:
a table on stdout, results.json, speedups.png and gd_memory_rss.png in
runs/bench-distill-<time>/.

`--smoke`: tiny random models, 12 SST-2 rows, batch 4, 3 steps, gd without `ours_before`, in
a temporary folder: the code runs; its figures mean nothing.

    python bench/bench_distill.py [--steps 100] [--rounds 1] [--parts phases gd]
    python bench/bench_distill.py --parts gd [--gd_batch 64] [--gd_steps 500]
        [--gd_variants ours ours_before torch] [--gd_teacher minilm | bert-base]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from common import (
    SST2_TRAIN,
    TINYBERT_4,
    WIKI,
    head_rows,
    machine,
    measured,
    minilm,
    options,
    output_folder,
    pyplot,
    random_bert,
    run_script,
    script,
    step_times,
)

TASK_SEQ, GD_SEQ, VOCAB = 64, 128, 30522
TEACHERS = {
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
}
TEACHERS["minilm"].update(intermediate_size=1536)
TEACHERS["bert-base"].update(intermediate_size=3072)
TINY_TEACHER = dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4)
TINY_TEACHER.update(intermediate_size=128)
TINY_STUDENT = dict(TINY_TEACHER, hidden_size=32, num_hidden_layers=2)
PADDINGS = {"buckets": "true", "fixed": "false"}  # ours, the zoo's: --length_buckets
BEFORE = {"gradient_accumulation_steps": 1, "length_buckets": "true"}  # gd before issue 31


def examples_per_second(steps: list, batch: int) -> float:
    # a smoke run's tiny steps can round to nothing in metrics.jsonl's examples/s
    return batch * len(steps) / sum(steps) if sum(steps) > 0 else float("nan")


# ---- the PyTorch peer ----------------------------------------------------------------------------


def torch_worker(records, shapes, padding, batch, steps, metrics) -> None:
    """TinyBERT's layer-distillation step in PyTorch over `records`, one metrics.jsonl line a
    step as our trainer writes them. `padding`: "fixed" (the records' length), or "dynamic"
    (each batch cut to its longest row)."""
    import numpy as np
    import torch
    from transformers import BertConfig, BertModel

    from tinybert_data import load_records
    from tinybert_distill import uniform_layer_map

    batch, steps = int(batch), int(steps)
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    teacher_shape, student_shape = json.loads(shapes)

    def bert(shape):
        config = BertConfig(vocab_size=VOCAB, attn_implementation="eager", **shape)
        return BertModel(config, add_pooling_layer=False)

    teacher = bert(teacher_shape).eval().requires_grad_(False)
    student = bert(student_shape).train()
    fit_dense = torch.nn.Linear(student_shape["hidden_size"], teacher_shape["hidden_size"])
    trained = [*student.parameters(), *fit_dense.parameters()]
    optimizer = torch.optim.AdamW(trained, lr=5e-5, weight_decay=1e-4, eps=1e-6)
    layers = student_shape["num_hidden_layers"], teacher_shape["num_hidden_layers"]
    hidden_map, attention_map = uniform_layer_map(*layers)
    columns = load_records(records, ["input_ids", "segment_ids", "input_mask"])
    order = np.random.default_rng(0).permutation(len(columns["input_ids"]))
    mse = torch.nn.functional.mse_loss
    started = time.perf_counter()
    for step in range(steps):
        rows = order[np.arange(step * batch, (step + 1) * batch) % len(order)]
        ids, segments, mask = (torch.from_numpy(columns[c][rows]).long() for c in columns)
        if padding == "dynamic":
            length = int(mask.sum(1).max())
            ids, segments, mask = ids[:, :length], segments[:, :length], mask[:, :length]
        inputs = dict(token_type_ids=segments, attention_mask=mask, output_attentions=True)
        with torch.no_grad():
            taught = teacher(ids, output_hidden_states=True, **inputs)
        learnt = student(ids, output_hidden_states=True, **inputs)
        loss = sum(
            mse(learnt.attentions[s], taught.attentions[t]) for s, t in enumerate(attention_map)
        )
        loss = loss + sum(
            mse(fit_dense(learnt.hidden_states[s]), taught.hidden_states[t])
            for s, t in enumerate(hidden_map)
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        speed = (step + 1) * batch / (time.perf_counter() - started)
        with open(metrics, "a") as handle:
            handle.write(json.dumps({"phase": "torch", "step": step + 1, "examples_per_s": speed}))
            handle.write("\n")


def torch_command(records, shapes: tuple, padding: str, batch: int, steps: int, output: Path):
    arguments = (records, json.dumps(shapes), padding, batch, steps, output / "metrics.jsonl")
    return [sys.executable, __file__, "--worker", *map(str, arguments)]


# ---- the parts -----------------------------------------------------------------------------------


def prepare(folder: Path, smoke: bool, rows: int, parts: list) -> dict:
    """SST-2 train's first `rows` rows as records at seq 64, route B's corpus, the teacher
    (all-MiniLM-L6-v2 converted, or a smoke run's tiny random one) and for the phases a general
    student of one `tinybert-gd` step."""
    sample = head_rows(SST2_TRAIN, rows, folder / "sst2_train.tsv")
    vocab = minilm() / "vocab.txt"
    run_script(
        "tinybert-data", "task", *options(dict(task="sst2", input=sample, vocab=vocab)),
        *options(dict(seq_length=TASK_SEQ, output=folder / "sst2_train")),
    )  # fmt: skip
    all_sentences = head_rows(SST2_TRAIN, 200, folder / "s.tsv") if smoke else SST2_TRAIN
    sentences = folder / "sst2_sentences.txt"
    lines = all_sentences.read_text(encoding="utf-8").splitlines()[1:]
    sentences.write_text("\n".join(line.split("\t")[0] for line in lines) + "\n")
    wiki = head_rows(WIKI, 200, folder / "wiki.txt") if smoke else WIKI
    run_script(
        "tinybert-data", "corpus", "--input", wiki, sentences, "--quiet",
        *options(dict(vocab=vocab, seq_length=GD_SEQ, output=folder / "corpus")),
    )  # fmt: skip
    teacher = folder / "teacher.ckpt"
    if smoke:
        random_bert(TINY_TEACHER, teacher)
    else:
        run_script("tinybert-convert", "hf2ms", "--input", minilm(), "--output", teacher)
    general = folder / "general_student"
    if "phases" in parts:
        values = dict(load_teacher_ckpt_path=teacher, data_dir=folder / "corpus")
        values.update(save_ckpt_path=general, train_steps=1)
        run_script("tinybert-gd", *flags("tinybert-gd", values, smoke))
    return dict(records=folder / "sst2_train", corpus=folder / "corpus", teacher=teacher,
                student=general / "gd.ckpt")  # fmt: skip


def flags(command: str, values: dict, smoke: bool) -> list:
    """`values` as flags of our `command`; a smoke run's in PYNATIVE mode (compiling would cost
    most of its few steps), its general student tiny (tinybert-gd's default is TinyBERT-4)."""
    if smoke:
        values = dict(values, ms_mode="PYNATIVE")
        if command == "tinybert-gd":
            values.update({f"bert_student_net_cfg.{k}": v for k, v in TINY_STUDENT.items()})
    return options(values)


def phases(args, folder: Path, inputs: dict) -> dict:
    """Ours with buckets and with fixed padding, PyTorch fixed and dynamic, alternating."""
    batch, common = args.batch, dict(task_name="sst2", train_data_dir=inputs["records"])
    common.update(do_eval="false", save_ckpt_step=100000)
    finetune = dict(common, load_ckpt_path=inputs["teacher"], epoch_size=1)
    finetune["common_cfg.batch_size"] = batch
    td = dict(common, load_teacher_ckpt_path=folder / "tinybert-finetune_buckets_0" / "last.ckpt")
    td.update(load_gd_ckpt_path=inputs["student"], allow_weak_teacher="true")
    td.update({"td_phase1_epoch_size": 1, "td_phase2_epoch_size": 1})
    td.update({"phase1_cfg.batch_size": batch, "phase2_cfg.batch_size": batch})
    steps = {}  # (phase, padding) -> step seconds, every round
    for round_number in range(args.rounds):
        order = list(PADDINGS) if round_number % 2 == 0 else list(PADDINGS)[::-1]
        runs = [(c, p) for c in ("tinybert-finetune", "tinybert-td") for p in order]
        for command, padding in [*runs, ("torch", "fixed"), ("torch", "dynamic")]:
            output = folder / f"{command}_{padding}_{round_number}"
            if command == "torch":
                shapes = (args.teacher_shape, args.student_shape)
                line = torch_command(inputs["records"], shapes, padding, batch, args.steps, output)
            else:
                values = dict(finetune if command == "tinybert-finetune" else td)
                values.update(length_buckets=PADDINGS[padding], save_ckpt_path=output)
                line = [script(command), *flags(command, values, args.smoke)]
            measured(line, output)
            for phase, (times, compiles) in step_times(output / "metrics.jsonl", batch).items():
                steps.setdefault((phase, padding), []).extend(times)
                print(f"  {output.name} {phase}: {len(times)} steps timed, {compiles} compiling")
    rates = {key: examples_per_second(times, batch) for key, times in steps.items()}
    result = {}
    for phase in ("finetune", "td_phase1", "td_phase2"):
        fast, slow = rates[phase, "buckets"], rates[phase, "fixed"]
        result[phase] = dict(buckets_examples_s=fast, fixed_examples_s=slow, speedup=fast / slow)
        print(f"{phase:10s} buckets {fast:7.1f} ex/s   fixed {slow:6.1f} ex/s   {fast / slow:.2f}x")
    ours, fixed, dynamic = (rates[key] for key in (("td_phase1", "buckets"), ("torch", "fixed"),
                            ("torch", "dynamic")))  # fmt: skip
    result["torch_phase1"] = dict(fixed_examples_s=fixed, dynamic_examples_s=dynamic)
    result["torch_phase1"].update(vs_fixed=ours / fixed, vs_dynamic=ours / dynamic)
    print(
        f"phase 1    PyTorch fixed {fixed:.1f} ex/s, dynamic {dynamic:.1f} ex/s; ours bucketed / "
        f"fixed-PyTorch {ours / fixed:.2f}x, / dynamic-PyTorch {ours / dynamic:.2f}x"
    )
    return result


def gd(args, folder: Path, inputs: dict) -> dict:
    """tinybert-gd (today's defaults, the defaults before) and PyTorch: memory and speed."""
    teacher, batch = inputs["teacher"], args.gd_batch
    if args.gd_teacher == "bert-base" and not args.smoke:
        teacher = random_bert(TEACHERS["bert-base"], folder / "bert_base.ckpt")
    per_epoch = json.loads((inputs["corpus"] / "task.json").read_text())["num_rows"] // batch
    row = {"batch": batch, "seq": GD_SEQ, "teacher": args.gd_teacher}
    for name in args.gd_variants:
        output = folder / f"gd_{name}"
        steps = args.gd_steps if name == "ours" else min(args.gd_steps, 100)
        if name == "torch":
            shapes = (args.gd_teacher_shape, args.student_shape)
            command = torch_command(inputs["corpus"], shapes, "fixed", batch, steps, output)
        else:
            values = dict(load_teacher_ckpt_path=teacher, data_dir=inputs["corpus"])
            values.update(save_ckpt_path=output, train_steps=steps, save_ckpt_step=100000)
            values.update({"epoch_size": -(-steps // per_epoch), "common_cfg.batch_size": batch})
            values.update(BEFORE if name == "ours_before" else {})
            command = [script("tinybert-gd"), *flags("tinybert-gd", values, args.smoke)]
        row[name] = result = measured(command, output)
        ((times, _),) = step_times(output / "metrics.jsonl", batch).values()
        by_step = result["rss_by_step_mb"]
        last = max(by_step, default=0)
        result["last_step"] = last
        result.update(seconds_per_step=statistics.mean(times))
        result.update(rss_step20_mb=by_step.get(min(20, last)), rss_last_mb=by_step.get(last - 1))
        at_20, at_last = result["rss_step20_mb"], result["rss_last_mb"]
        growth = at_last / at_20 - 1 if at_20 and at_last else float("nan")
        print(
            f"gd  {name:12s} B{batch} S{GD_SEQ}: peak RSS {result['peak_rss_mb'] / 1024:.2f} GB; "
            f"RSS step {min(20, last)} -> {last}: {growth:+.1%}; "
            f"{result['seconds_per_step']:.2f} s a step ({result['seconds']:.0f} s in all)"
        )
    for name in ("ours", "ours_before"):
        if name in row and "torch" in row:
            memory = row[name]["peak_rss_mb"] / row["torch"]["peak_rss_mb"]
            step_time = row[name]["seconds_per_step"] / row["torch"]["seconds_per_step"]
            row[f"{name}_vs_torch"] = dict(memory=memory, step_time=step_time)
            print(f"gd  {name} / PyTorch: peak RSS {memory:.2f}x (target 1.5x), time a step "
                  f"{step_time:.2f}x")  # fmt: skip
    return row


# ---- plots and the driver ------------------------------------------------------------------------


def plot(phases: dict, gd_row: dict, folder: Path) -> None:
    """speedups.png (each ratio of the run as a bar), gd_memory_rss.png (RSS by step)."""
    plt = pyplot()
    bars = {
        f"{p}\nbuckets / fixed": row["speedup"] for p, row in phases.items() if "speedup" in row
    }
    if "torch_phase1" in phases:
        bars["phase 1, ours /\nPyTorch fixed"] = phases["torch_phase1"]["vs_fixed"]
        bars["phase 1, ours /\nPyTorch dynamic"] = phases["torch_phase1"]["vs_dynamic"]
    if "ours_vs_torch" in gd_row:
        bars["GD step,\nPyTorch time / ours"] = 1 / gd_row["ours_vs_torch"]["step_time"]
    if bars:
        figure, axis = plt.subplots(figsize=(9, 4))
        axis.bar(range(len(bars)), list(bars.values()), color="tab:blue")
        for index, value in enumerate(bars.values()):
            axis.text(index, value, f"{value:.2f}x", ha="center", va="bottom")
        axis.axhline(1, color="grey", linestyle=":")
        axis.set_xticks(range(len(bars)), list(bars), fontsize=8)
        axis.set_ylabel("speed-up (higher is better)")
        axis.set_title(f"SST-2 train, batch 32, seq {TASK_SEQ}; GD batch {gd_row.get('batch')}")
        figure.tight_layout()
        figure.savefig(folder / "speedups.png", dpi=120)
    if gd_row:
        figure, axis = plt.subplots(figsize=(7, 4))
        for name in ("ours", "ours_before", "torch"):
            if name in gd_row:
                by_step = sorted(gd_row[name]["rss_by_step_mb"].items())
                axis.plot([s for s, _ in by_step], [r / 1024 for _, r in by_step], label=name)
        axis.set_xlabel("steps done")
        axis.set_ylabel("RSS (GB)")
        axis.set_title(f"General distillation, batch {gd_row['batch']}, seq {GD_SEQ}: memory")
        axis.legend()
        figure.tight_layout()
        figure.savefig(folder / "gd_memory_rss.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", default=["phases", "gd"], choices=["phases", "gd"])
    parser.add_argument("--steps", type=int, default=100, help="phases: steps a phase (100)")
    parser.add_argument("--rounds", type=int, default=1, help="phases: alternating rounds (1)")
    parser.add_argument("--gd_batch", type=int, default=64, help="gd: rows a step (64)")
    parser.add_argument(
        "--gd_steps", type=int, default=100, help="gd: steps with today's defaults (100; the "
        "others at most 100; 500 for the flatness figure)"
    )  # fmt: skip
    parser.add_argument(
        "--gd_variants", nargs="+", default=["ours", "ours_before", "torch"],
        choices=["ours", "ours_before", "torch"], help="gd: which runs",
    )  # fmt: skip
    parser.add_argument("--gd_teacher", choices=list(TEACHERS), default="minilm")
    parser.add_argument("--smoke", action="store_true", help="tiny models and data: runs or not")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return torch_worker(*args.worker)
    args.batch, args.student_shape = 32, TINYBERT_4
    args.teacher_shape, args.gd_teacher_shape = TEACHERS["minilm"], TEACHERS[args.gd_teacher]
    if args.smoke:
        args.batch, args.steps, args.rounds, args.gd_batch, args.gd_steps = 4, 3, 1, 4, 3
        args.gd_variants = ["ours", "torch"]  # ours_before: the same code, other flags
        args.student_shape, args.teacher_shape, args.gd_teacher_shape = (
            TINY_STUDENT, TINY_TEACHER, TINY_TEACHER
        )  # fmt: skip
    folder = output_folder("distill", args.smoke)
    results = {"machine": machine()}
    print(f"{results['machine']}; outputs in {folder}", flush=True)
    inputs = prepare(folder, args.smoke, args.steps * args.batch, args.parts)
    for part in args.parts:
        results[part] = (phases if part == "phases" else gd)(args, folder, inputs)
        (folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results.get("phases", {}), results.get("gd", {}), folder)
    print(f"wrote {folder / 'results.json'} and its plots")


if __name__ == "__main__":
    main()
