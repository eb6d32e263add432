"""`tinybert-data`: task files and text corpora to records, and a look inside records.

tinybert-data task --task sst2 --input train.tsv --vocab vocab.txt --seq_length 64 --output DIR
tinybert-data corpus --input wiki/ --vocab vocab.txt --seq_length 128 --output DIR --shards 4
tinybert-data inspect DIR
tinybert-data validate DIR

--output into a folder holding another dataset's records is refused unless --overwrite.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from tinybert_core import (
    IGNORE_INDEX,
    DataError,
    UnknownTaskError,
    quiet_on_closed_stdout,
    read_task_info,
    regular_file,
)
from tinybert_data.errors import RecordsError
from tinybert_data.pipeline import Summary, write_corpus_records, write_task_records
from tinybert_data.records import FORMATS, VOCAB_FILE, read_records, record_files
from tinybert_data.records import validate_records as validate_records_dir
from tinybert_data.tasks import ON_ERROR, TASK_READERS
from tinybert_data.tokenization import BertTokenizer

logger = logging.getLogger("tinybert_data")

MAX_EXAMPLES = 1000  # inspect decodes a sample; all rows are read_records' job


def boolean(text: str) -> bool:
    """argparse type of a true/false flag (also yes/no, 1/0, any case); tinybert-augment's too."""
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def positive_int(text: str) -> int:
    """argparse type of a count of at least 1; tinybert-augment's too."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _examples(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_EXAMPLES:
        raise argparse.ArgumentTypeError(f"must be in [0, {MAX_EXAMPLES}], not {value}")
    return value


def _add_output_flags(parser: argparse.ArgumentParser, default_seq_length: int) -> None:
    parser.add_argument(
        "--vocab", required=True, type=Path, help="BERT vocab.txt (one token per line)"
    )
    parser.add_argument(
        "--do_lower_case",
        type=boolean,
        default=True,
        help="lower-case and strip accents: true (default) for uncased and Chinese vocabularies",
    )
    parser.add_argument(
        "--seq_length",
        type=positive_int,
        default=default_seq_length,
        help=f"tokens per row, [CLS] and [SEP] included (default {default_seq_length})",
    )
    parser.add_argument("--output", required=True, type=Path, help="records directory to write")
    parser.add_argument(
        "--overwrite",
        type=boolean,
        nargs="?",
        const=True,
        default=False,
        help="replace the records of another dataset in --output (without it such a folder is "
        "refused; rerunning into a folder of the same task and inputs needs no flag)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="tfrecord",
        help="tfrecord (default) or mindrecord (needs the tinybert-data[mindrecord] extra)",
    )
    parser.add_argument(
        "--shards", type=positive_int, default=1, help="number of record files (default 1)"
    )
    parser.add_argument(
        "--on_error",
        choices=ON_ERROR,
        default="raise",
        help="a bad input row stops the run with file, line and reason (raise, default) "
        "or is left out and counted (skip)",
    )
    parser.add_argument("--name", help="base name of the record files")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, warnings only")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinybert-data",
        description="Raw GLUE/CLUE files and text corpora to TFRecord/MindRecord for TinyBERT.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    task = commands.add_parser(
        "task",
        help="a task file (GLUE TSV, CLUE JSON lines) to records",
        description="Tokenize a task file and write input_ids, segment_ids, input_mask, "
        "label_ids records with schema.json and task.json.",
    )
    task.add_argument(
        "--task", required=True, choices=sorted(TASK_READERS), help="task of the input"
    )
    task.add_argument(
        "--input",
        required=True,
        nargs="+",
        type=Path,
        help="task file(s), e.g. train.tsv; several files are written as one dataset",
    )
    _add_output_flags(task, default_seq_length=128)

    corpus = commands.add_parser(
        "corpus",
        help="text corpora to packed sequences for general distillation",
        description="Pack plain text (one sentence per line, blank line between documents) or "
        "WikiExtractor output into sequences of segment pairs; streaming, deterministic per seed.",
    )
    corpus.add_argument(
        "--input", required=True, nargs="+", type=Path, help="corpus files or folders of files"
    )
    corpus.add_argument("--seed", type=int, default=12345, help="random seed (default 12345)")
    corpus.add_argument(
        "--short_seq_prob",
        type=float,
        default=0.1,
        help="probability of a shorter target length for a sequence (default 0.1)",
    )
    corpus.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="processes packing pieces of the input in parallel (default 1); the rows are the "
        "same for any number of workers",
    )
    _add_output_flags(corpus, default_seq_length=128)

    inspect = commands.add_parser(
        "inspect", help="row count, columns, label distribution and examples of records"
    )
    inspect.add_argument("path", type=Path, help="records directory or record file")
    inspect.add_argument(
        "--examples",
        type=_examples,
        default=3,
        help=f"examples to decode, 0 to {MAX_EXAMPLES} (default 3)",
    )
    inspect.add_argument("--vocab", type=Path, help="vocab.txt (default: the one in the directory)")

    validate = commands.add_parser(
        "validate", help="check TFRecord files against their schema.json"
    )
    validate.add_argument("path", type=Path, help="records directory")
    return parser


@quiet_on_closed_stdout
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="tinybert-data: %(message)s"
    )
    try:
        if args.command == "task":
            summary = run_task(args)
        elif args.command == "corpus":
            summary = run_corpus(args)
        elif args.command == "inspect":
            inspect_records(args.path, args.examples, args.vocab)
            return 0
        else:
            report = validate_records_dir(args.path)
            files = len(report["files"])
            print(
                f"{args.path}: {report['num_rows']} rows in {files} file(s) agree with schema.json"
            )
            return 0
    except BrokenPipeError:  # stdout's reader went away: quiet_on_closed_stdout ends quietly
        raise
    except (DataError, RecordsError, UnknownTaskError, OSError, ImportError, ValueError) as error:
        print(f"tinybert-data: error: {error}", file=sys.stderr)
        return 1
    print_summary(summary)
    return 0


def run_task(args) -> Summary:
    logger.info(
        "task %s: %s -> %s (%s, seq_length %d)",
        args.task,
        " ".join(map(str, args.input)),
        args.output,
        args.format,
        args.seq_length,
    )
    return write_task_records(
        args.task,
        args.input,
        args.vocab,
        args.output,
        args.seq_length,
        do_lower_case=args.do_lower_case,
        format=args.format,
        shards=args.shards,
        on_error=args.on_error,
        name=args.name,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )


def run_corpus(args) -> Summary:
    logger.info(
        "corpus: %s -> %s (%s, seq_length %d, seed %d, %d worker(s))",
        " ".join(map(str, args.input)),
        args.output,
        args.format,
        args.seq_length,
        args.seed,
        args.workers,
    )
    return write_corpus_records(
        args.input,
        args.vocab,
        args.output,
        args.seq_length,
        do_lower_case=args.do_lower_case,
        short_seq_prob=args.short_seq_prob,
        seed=args.seed,
        format=args.format,
        shards=args.shards,
        on_error=args.on_error,
        name=args.name or "corpus",
        progress=not args.quiet,
        workers=args.workers,
        overwrite=args.overwrite,
    )


def print_summary(summary: Summary) -> None:
    print(f"wrote {summary.num_rows} rows to {summary.output} in {summary.seconds:.1f} s")
    print(f"  files: {', '.join(summary.files)}")
    if summary.num_lines:
        print(
            f"  read {summary.num_lines} lines in {summary.num_documents} documents, "
            f"{summary.num_tokens} tokens written"
        )
    if summary.label_counts:
        print(f"  labels: {_distribution(summary.label_counts)}")
    print(f"  skipped: {len(summary.skipped)} bad row(s)")
    for error in summary.skipped[:5]:
        print(f"    {error}")
    if len(summary.skipped) > 5:
        print(f"    ... and {len(summary.skipped) - 5} more")


def _distribution(counts: dict) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{label} {n} ({100 * n / total:.1f}%)" for label, n in counts.items())


def inspect_records(path: Path, num_examples: int = 3, vocab: Path | None = None) -> None:
    """Print what a records directory (or file) holds, streaming through it once."""
    vocab = regular_file(vocab) if vocab else (path / VOCAB_FILE if path.is_dir() else None)
    format, files = record_files(path)
    info = read_task_info(path) if path.is_dir() else {}
    labels = info.get("labels") or []
    num_rows, counts, examples, shapes = 0, Counter(), [], {}
    for batch in read_records(path, batch_size=4096):
        if not shapes:
            shapes = {name: values.shape[1:] for name, values in batch.items()}
        if "label_ids" in batch:
            values = batch["label_ids"].ravel()
            counts.update(values[values != IGNORE_INDEX].tolist())
        for i in range(min(num_examples - len(examples), len(batch["input_ids"]))):
            examples.append({name: values[i] for name, values in batch.items()})
        num_rows += len(batch["input_ids"])
    print(f"{path}: {format}, {len(files)} file(s), {num_rows} rows")
    if info:
        print(
            f"task: {info.get('task')} ({info.get('task_type')}), "
            f"seq_length {info.get('seq_length')}, do_lower_case {info.get('do_lower_case')}"
        )
    print("columns: " + ", ".join(f"{name} {list(shape)}" for name, shape in shapes.items()))
    if counts:
        named = {labels[i] if 0 <= i < len(labels) else str(i): counts[i] for i in sorted(counts)}
        print(f"labels: {_distribution(named)}")
    if not examples:
        return
    if vocab is None or not vocab.is_file():
        print("examples: (no vocab.txt to decode with; pass --vocab)")
        return
    tokenizer = BertTokenizer.from_vocab(vocab, do_lower_case=info.get("do_lower_case", True))
    print("examples:")
    for index, row in enumerate(examples):
        length = int(row["input_mask"].sum())
        print(f"  [{index}] {length} tokens: {tokenizer.decode(row['input_ids'][:length])}")
        if "label_ids" in row and row["label_ids"].ndim == 0:
            label = int(row["label_ids"])
            print(f"      label: {labels[label] if 0 <= label < len(labels) else label}")
        elif "label_ids" in row:
            tokens = tokenizer.convert_ids_to_tokens(row["input_ids"])
            tagged = [
                f"{token}/{labels[tag] if tag < len(labels) else tag}"
                for token, tag in zip(tokens, row["label_ids"].tolist())
                if tag != IGNORE_INDEX and (tag >= len(labels) or labels[tag] != "O")
            ]
            print(f"      entities: {' '.join(tagged) or '(none)'}")


if __name__ == "__main__":
    sys.exit(main())
