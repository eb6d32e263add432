"""Console scripts of the base install (no MindSpore): tinybert-predict, tinybert-eval-onnx,
tinybert-quantize, tinybert-310-preprocess, tinybert-310-postprocess.

Bad input ends with one line on stderr naming what is wrong, and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tinybert_data import BertTokenizer, DataError, get_task

from .errors import DeployError
from .files import atomic_path

USER_ERRORS = (DeployError, DataError, FileNotFoundError, KeyError)


def _run(prog: str, work, args) -> int:
    logging.basicConfig(level=logging.INFO, format=f"{prog}: %(message)s")
    try:
        work(args)
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1
    return 0


def _write_report(path, report: dict) -> None:
    if path:
        with atomic_path(path) as temporary:
            temporary.write_text(
                json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )


def _summary(result: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in result.items() if isinstance(v, float))


# ---- tinybert-predict ----------------------------------------------------------------------


def _texts(args) -> list:
    """TEXT arguments, or the lines of --input, or stdin; a tab separates a sentence pair."""
    if args.text:
        lines = args.text
    elif args.input:
        path = Path(args.input)
        if not path.is_file():
            raise DeployError(f"{path}: input file not found")
        lines = path.read_text(encoding="utf-8").splitlines()
    else:
        lines = sys.stdin.read().splitlines()
    texts = [tuple(line.split("\t", 1)) if "\t" in line else line for line in lines if line.strip()]
    if not texts:
        raise DeployError("no input text (give TEXT arguments, --input FILE or lines on stdin)")
    return texts


def predict(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-predict",
        description="Predict labels (or NER entities) for raw text with an exported ONNX model. "
        "Writes one JSON object per input line to stdout.",
    )
    parser.add_argument(
        "text", nargs="*", help="texts to classify (default: --input or stdin); tab-separated pairs"
    )
    parser.add_argument("--model", required=True, help="model.onnx from tinybert-export")
    parser.add_argument(
        "--vocab", required=True, help="vocab.txt the model's data was tokenized with"
    )
    parser.add_argument("--input", help="file with one text (or tab-separated pair) per line")
    parser.add_argument(
        "--task", help="expected task; an error if the model was exported for another"
    )
    parser.add_argument("--batch_size", type=int, default=32, help="texts per batch (default 32)")
    parser.add_argument(
        "--max_length", type=int, help="truncate longer inputs (default: the model's maximum)"
    )
    parser.add_argument(
        "--threads", type=int, help="ONNX Runtime intra-op threads (default: all cores)"
    )
    args = parser.parse_args(argv)

    def work(args):
        from .runtime import Predictor

        predictor = Predictor.from_files(
            args.model, args.vocab, args.threads, args.batch_size, args.max_length
        )
        if args.task and predictor.model.task and args.task != predictor.model.task:
            raise DeployError(
                f"{args.model} was exported for {predictor.model.task}, not {args.task}"
            )
        for result in predictor.predict(_texts(args)):
            print(json.dumps(result, ensure_ascii=False))

    return _run("tinybert-predict", work, args)


# ---- tinybert-eval-onnx --------------------------------------------------------------------


def eval_onnx(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-eval-onnx",
        description="Accuracy (or span F1 for NER) of an ONNX model on a task's dev data, "
        "with tinybert-eval's metrics. Never imports MindSpore.",
    )
    parser.add_argument("--model", required=True, help="model.onnx from tinybert-export")
    parser.add_argument(
        "--task", required=True, help="task name (sst2, qnli, mnli, tnews, cluener)"
    )
    parser.add_argument(
        "--input",
        required=True,
        help="raw dev file (dev.tsv, dev.json) or a tinybert-data records folder",
    )
    parser.add_argument("--vocab", help="vocab.txt (needed for a raw input file)")
    parser.add_argument(
        "--seq_length", type=int, default=128, help="maximum tokens per example (default 128)"
    )
    parser.add_argument(
        "--batch_size", type=int, default=32, help="examples per batch (default 32)"
    )
    parser.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads")
    parser.add_argument("--output", help="also write the result as JSON here")
    args = parser.parse_args(argv)

    def work(args):
        from .evaluate import evaluate, task_columns
        from .runtime import OnnxModel

        model = OnnxModel(args.model, args.threads)
        columns = task_columns(args.task, args.input, args.vocab, model, args.seq_length)
        result = evaluate(model, args.task, columns, args.batch_size)
        print(f"{args.task} on {args.input}: {_summary(result)} ({result['count']} examples)")
        _write_report(args.output, {"model": str(args.model), "input": str(args.input), **result})

    return _run("tinybert-eval-onnx", work, args)


# ---- tinybert-quantize ---------------------------------------------------------------------


def quantize(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-quantize", description="int8 dynamic quantization of an exported ONNX model."
    )
    parser.add_argument("--model", required=True, help="model.onnx")
    parser.add_argument("--output", required=True, help="quantized model to write")
    parser.add_argument(
        "--mode", default="dynamic", choices=["dynamic"], help="quantization mode (dynamic)"
    )
    args = parser.parse_args(argv)

    def work(args):
        from .quantize import quantize_model

        quantize_model(args.model, args.output)
        logging.getLogger("tinybert_deploy").info("wrote %s", args.output)

    return _run("tinybert-quantize", work, args)


# ---- Ascend310 -------------------------------------------------------------------------------


def preprocess_310(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-310-preprocess",
        description="Write the per-example input .bin files and labels that the Ascend310 "
        "ACL inference app reads.",
    )
    parser.add_argument("--task", required=True, help="task name")
    parser.add_argument("--input", required=True, help="raw dev file (dev.tsv, dev.json)")
    parser.add_argument("--vocab", required=True, help="vocab.txt")
    parser.add_argument(
        "--seq_length", type=int, default=128, help="fixed length of every example (default 128)"
    )
    parser.add_argument(
        "--do_lower_case", default="true", choices=["true", "false"], help="default true"
    )
    parser.add_argument("--output", required=True, help="folder to write")
    args = parser.parse_args(argv)

    def work(args):
        from .ascend310 import preprocess

        task = get_task(args.task)
        tokenizer = BertTokenizer.from_vocab(args.vocab, do_lower_case=args.do_lower_case == "true")
        examples = list(task.read(args.input))
        if not examples:
            raise DeployError(f"{args.input}: no examples")
        columns = task.features(examples, tokenizer, args.seq_length)
        preprocess(columns, task.name, task.task_type, list(task.labels), args.output)
        logging.getLogger("tinybert_deploy").info(
            "wrote %d examples to %s", len(examples), args.output
        )

    return _run("tinybert-310-preprocess", work, args)


def postprocess_310(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-310-postprocess",
        description="Score the Ascend310 app's result .bin files: accuracy, or span F1 for NER.",
    )
    parser.add_argument("--data_dir", required=True, help="folder tinybert-310-preprocess wrote")
    parser.add_argument(
        "--result_dir", required=True, help="folder of the app's <name>_0.bin results"
    )
    parser.add_argument("--output", help="also write the result as JSON here")
    args = parser.parse_args(argv)

    def work(args):
        from .ascend310 import postprocess

        result = postprocess(args.data_dir, args.result_dir)
        print(f"{_summary(result)} ({result['count']} examples)")
        _write_report(args.output, result)

    return _run("tinybert-310-postprocess", work, args)
