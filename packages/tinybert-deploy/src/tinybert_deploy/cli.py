"""Console scripts: tinybert-predict, tinybert-eval-onnx, tinybert-quantize,
tinybert-310-preprocess, tinybert-310-postprocess (the base install: no MindSpore), and
tinybert-export (the `[export]` extra; MindSpore is imported only once it runs).

Bad input ends with one line on stderr naming what is wrong, and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from tinybert_core import (
    TinybertError,
    atomic_path,
    check_line_ends,
    quiet_on_closed_stdout,
    regular_file,
    text_lines,
)
from tinybert_data import TASK_READERS, get_task

from .ascend310 import MAX_SEQ_LENGTH
from .errors import DeployError
from .export import FORMATS
from .runtime import RUNTIMES, in_range, shortest_length, tokenizer_from_file

# every package's errors are TinybertErrors (tinybert-core): bad input, one line each
USER_ERRORS = (TinybertError, FileNotFoundError, KeyError)
# ONNX Runtime's static calibration keeps every intermediate tensor of every calibration row
# in memory (its MinMax calibrator), so memory grows with the rows: 4x the default at most.
MAX_CALIBRATION_ROWS = 1024


def _run(prog: str, work, args) -> int:
    logging.basicConfig(level=logging.INFO, format=f"{prog}: %(message)s")
    try:
        work(args)
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise  # the reader of our output left (`| head`): quiet_on_closed_stdout ends quietly
    except OSError as error:  # an output folder we may not write, a full disk
        where = f"{error.filename}: " if error.filename else ""
        print(f"{prog}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1
    return 0


def _given(text: str) -> str:
    """A file or task name: an empty one (a shell variable that was not set) is refused."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _write_report(path, report: dict) -> None:
    if path:
        path = Path(path)
        if path.is_dir():
            raise DeployError(f"--output {path} is a folder: give a file name")
        if path.parent.exists() and not path.parent.is_dir():
            raise DeployError(f"cannot write {path}: {path.parent} is a file, not a folder")
        with atomic_path(path) as temporary:
            temporary.write_text(
                json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )


def _summary(result: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in result.items() if isinstance(v, float))


def _add_runtime_flags(parser) -> None:
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=list(RUNTIMES),
        help="inference engine: auto (the fastest here, printed on stderr), onnxruntime, or "
        "openvino (pip install tinybert-deploy[openvino])",
    )
    parser.add_argument(
        "--threads", type=int, help="intra-op threads, 1 to 256 (default: all cores)"
    )


# ---- tinybert-export -----------------------------------------------------------------------


@quiet_on_closed_stdout
def export(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-export",
        description="Export a tinybert task checkpoint to ONNX (dynamic shapes, exact GELU, "
        "carrying its task and vocabulary), MINDIR or AIR.",
    )
    parser.add_argument(
        "--ckpt_file",
        type=_given,
        required=True,
        help="task checkpoint (e.g. tinybert-td's best.ckpt)",
    )
    parser.add_argument(
        "--task_name",
        type=_given,
        help="task the model was trained on (sst2, cluener, ...); only for checkpoints that do "
        "not record it, and refused if it contradicts the checkpoint",
    )
    parser.add_argument(
        "--file_name", type=_given, required=True, help="output path; the format's suffix is added"
    )
    parser.add_argument("--file_format", default="ONNX", choices=list(FORMATS), help="default ONNX")
    parser.add_argument(
        "--config_path",
        type=_given,
        help="BertConfig (JSON/YAML) for checkpoints without an embedded one",
    )
    parser.add_argument(
        "--do_lower_case",
        choices=["true", "false"],
        help="tokenization recorded in the model (default: the checkpoint's, else true)",
    )
    parser.add_argument(
        "--vocab",
        type=_given,
        help="vocab.txt to embed, for checkpoints that do not carry their vocabulary",
    )
    parser.add_argument(
        "--quantize",
        choices=["dynamic", "static"],
        help="also write <name>.int8.onnx (ONNX only): dynamic, or static calibrated on "
        "--calibration_data",
    )
    parser.add_argument(
        "--calibration_data",
        type=_given,
        help="records folder or raw task file for --quantize static",
    )
    parser.add_argument(
        "--device_target",
        default="CPU",
        choices=["CPU", "GPU", "Ascend"],
        help="MindSpore backend for MINDIR/AIR (AIR needs Ascend)",
    )
    parser.add_argument(
        "--fused",
        action="store_true",
        help="ONNX only: write ONNX Runtime's fused operators (EmbedLayerNormalization, "
        "MultiHeadAttention, SkipLayerNormalization, BiasGelu) instead of standard ONNX ops; "
        "such a file runs on ONNX Runtime (and OpenVINO), not on every ONNX runtime",
    )
    args = parser.parse_args(argv)
    if args.fused and args.file_format != "ONNX":
        parser.error("--fused is for --file_format ONNX")

    def work(args):
        from .export import export as export_checkpoint

        export_checkpoint(
            args.ckpt_file,
            args.task_name,
            args.file_name,
            args.file_format,
            args.config_path,
            None if args.do_lower_case is None else args.do_lower_case == "true",
            args.quantize,
            args.vocab,
            args.calibration_data,
            args.device_target,
            args.fused,
        )

    return _run("tinybert-export", work, args)


# ---- tinybert-predict ----------------------------------------------------------------------


def decode_text(data: bytes, source: str) -> str:
    """Text of a file or stdin: UTF-8 (a BOM is dropped), or UTF-16 with its BOM; anything else
    (Latin-1, say, which cannot be told from other 8-bit encodings) is refused."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DeployError(
            f"{source} line {line}: byte 0x{data[error.start]:02x} is not UTF-8: save the text as "
            "UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _json_line(value) -> str:
    """One JSON line, non-ASCII kept, but the line breaks a string may hold besides "\\n"
    (U+0085, U+2028, U+2029: JSON allows them raw) escaped, so that a reader splitting the
    output with str.splitlines() still finds one result per line."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    for separator in "\x85\u2028\u2029":
        text = text.replace(separator, f"\\u{ord(separator):04x}")
    return text


def _lines(args) -> tuple:
    """(lines, where they come from): TEXT arguments, or the lines of --input, or stdin. One
    output per input: a blank line among the inputs is refused (trailing ones are dropped)."""
    if args.text:
        lines, source = args.text, "argument"
        for index, text in enumerate(lines, start=1):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise DeployError(
                    f"argument {index} is not valid UTF-8 text (check the terminal's encoding)"
                ) from None
    elif args.input:
        source = args.input
        text = decode_text(regular_file(args.input).read_bytes(), source)
        check_line_ends(source, text)
        lines = text_lines(text)
    else:
        source = "stdin"
        text = decode_text(sys.stdin.buffer.read(), source)
        check_line_ends(source, text)
        lines = text_lines(text)
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DeployError("no input text (give TEXT arguments, --input FILE or lines on stdin)")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            raise DeployError(
                f"{source} line {number} is blank: every input line needs a text (outputs are "
                "one per line)"
                if source != "argument"
                else f"argument {number} is empty"
            )
    return lines, source


def _texts(lines: list, source: str, model) -> list:
    """Input lines as the model's task reads them: a tab separates a sentence pair. A line's
    tabs must fit the task: exactly one for a pair task, none for a one-text task, whose
    line holding a tab is most likely a TSV row (text, then a label) and would otherwise be
    scored as a pair; a task tinybert-data has no reader for takes both."""
    reads_pairs, texts = model.reads_pairs, []
    for number, line in enumerate(lines, start=1):
        where = f"argument {number}" if source == "argument" else f"{source} line {number}"
        tabs = line.count("\t")
        if reads_pairs is False and tabs:
            raise DeployError(
                f"{where} holds a tab, but {model.task} reads one text, not a tab-separated "
                "pair: give the text column alone (cut -f1 for a TSV file) or replace the tab"
            )
        if reads_pairs and not tabs:
            raise DeployError(
                f"{where} has no tab, but {model.task} reads sentence pairs: put one tab between "
                "the two texts"
            )
        if tabs > 1:
            raise DeployError(
                f"{where} holds {tabs} tabs: a sentence pair is two texts with one tab between them"
            )
        pair = line.split("\t")
        if tabs and not all(text.strip() for text in pair):
            raise DeployError(f"{where}: a text of the pair is blank")
        texts.append(tuple(pair) if tabs else line)
    return texts


@quiet_on_closed_stdout
def predict(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-predict",
        description="Predict labels (or NER entities) for raw text with an exported ONNX model. "
        "Writes one JSON object per input line to stdout. Models exported by tinybert-deploy 0.2 "
        "carry their vocabulary and task; older ones need --vocab.",
    )
    parser.add_argument(
        "text", nargs="*", help="texts to classify (default: --input or stdin); tab-separated pairs"
    )
    parser.add_argument(
        "--model", type=_given, required=True, help="model.onnx from tinybert-export"
    )
    parser.add_argument(
        "--vocab",
        type=_given,
        help="vocab.txt the model's data was tokenized with (only for models exported before "
        "0.2; refused if it is not the model's own)",
    )
    parser.add_argument(
        "--input",
        type=_given,
        help="UTF-8 (or UTF-16 with BOM) file, one text (or tab-separated pair) per line",
    )
    parser.add_argument(
        "--task", type=_given, help="expected task; an error if the model was exported for another"
    )
    parser.add_argument(
        "--batch_size", type=int, default=32, help="texts per batch, 1 to 1024 (default 32)"
    )
    parser.add_argument(
        "--max_length",
        type=int,
        help="truncate longer inputs (default and most: the model's positions)",
    )
    _add_runtime_flags(parser)
    args = parser.parse_args(argv)

    def work(args):
        from .runtime import Predictor

        lines, source = _lines(args)
        predictor = Predictor.from_model(
            args.model, args.vocab, args.threads, args.batch_size, args.max_length, args.runtime
        )
        logging.getLogger("tinybert_deploy").info("running on %s", predictor.path)
        if args.task and predictor.model.task and args.task != predictor.model.task:
            raise DeployError(
                f"{args.model} was exported for {predictor.model.task}, not {args.task}"
            )
        for result in predictor.predict(_texts(lines, source, predictor.model)):
            print(_json_line(result))

    return _run("tinybert-predict", work, args)


# ---- tinybert-eval-onnx --------------------------------------------------------------------


@quiet_on_closed_stdout
def eval_onnx(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-eval-onnx",
        description="Accuracy (or span F1 for NER) of an ONNX model on a task's dev data, "
        "with tinybert-eval's metrics. Never imports MindSpore.",
    )
    parser.add_argument(
        "--model", type=_given, required=True, help="model.onnx from tinybert-export"
    )
    parser.add_argument(
        "--task",
        type=_given,
        help=f"task name ({', '.join(TASK_READERS)}; default: the model's own task)",
    )
    parser.add_argument(
        "--input",
        type=_given,
        required=True,
        help="raw dev file (dev.tsv, dev.json) or a tinybert-data records folder",
    )
    parser.add_argument(
        "--vocab",
        type=_given,
        help="vocab.txt, for a raw input file and a model exported before 0.2",
    )
    parser.add_argument(
        "--seq_length",
        type=int,
        help="maximum tokens per example, at most the model's positions (default: the model's "
        "training length, else 128); records keep the length they were written with",
    )
    parser.add_argument(
        "--batch_size", type=int, default=32, help="examples per batch, 1 to 1024 (default 32)"
    )
    _add_runtime_flags(parser)
    parser.add_argument("--output", type=_given, help="also write the result as JSON here")
    args = parser.parse_args(argv)

    def work(args):
        from .evaluate import evaluate, task_columns
        from .runtime import OnnxModel

        model = OnnxModel(args.model, args.threads, args.runtime)
        task = args.task or model.task
        if task is None:
            raise DeployError(f"{args.model} does not record its task: pass --task")
        if args.task and model.task and args.task != model.task:
            raise DeployError(f"{args.model} was exported for {model.task}, not {args.task}")
        columns = task_columns(task, args.input, args.vocab, model, args.seq_length)
        result = evaluate(model, task, columns, args.batch_size)
        print(
            f"{task} on {args.input}: {_summary(result)} ({result['count']} examples; "
            f"{model.description})"
        )
        _write_report(args.output, {"model": str(args.model), "input": str(args.input), **result})

    return _run("tinybert-eval-onnx", work, args)


# ---- tinybert-quantize ---------------------------------------------------------------------


@quiet_on_closed_stdout
def quantize(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-quantize",
        description="int8 quantization of an exported ONNX model (needs tinybert-deploy[export]).",
    )
    parser.add_argument("--model", type=_given, required=True, help="model.onnx")
    parser.add_argument("--output", type=_given, required=True, help="quantized model to write")
    parser.add_argument(
        "--mode",
        default="dynamic",
        choices=["dynamic", "static"],
        help="dynamic (default: activation ranges per batch) or static (QDQ, calibrated on "
        "--calibration_data)",
    )
    parser.add_argument(
        "--calibration_data",
        type=_given,
        help="records folder or raw task file (train rows) for --mode static",
    )
    parser.add_argument(
        "--vocab", type=_given, help="vocab.txt, for a raw file and a model exported before 0.2"
    )
    parser.add_argument(
        "--calibration_rows",
        type=int,
        default=256,
        help=f"rows to calibrate on, 1 to {MAX_CALIBRATION_ROWS} (default 256)",
    )
    args = parser.parse_args(argv)

    def work(args):
        from .quantize import quantize_model

        in_range("calibration_rows", args.calibration_rows, 1, MAX_CALIBRATION_ROWS)
        calibration = None
        if args.mode == "static":
            from .evaluate import task_columns
            from .runtime import OnnxModel

            if not args.calibration_data:
                raise DeployError("--mode static needs --calibration_data")
            model = OnnxModel(args.model)
            calibration = task_columns(
                model.task, args.calibration_data, args.vocab, model, rows=args.calibration_rows
            )
        quantize_model(args.model, args.output, args.mode, calibration, args.calibration_rows)
        logging.getLogger("tinybert_deploy").info("wrote %s", args.output)

    return _run("tinybert-quantize", work, args)


# ---- Ascend310 -------------------------------------------------------------------------------


@quiet_on_closed_stdout
def preprocess_310(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-310-preprocess",
        description="Write the per-example input .bin files and labels that the Ascend310 "
        "ACL inference app reads.",
    )
    parser.add_argument("--task", type=_given, required=True, help="task name")
    parser.add_argument(
        "--input", type=_given, required=True, help="raw dev file (dev.tsv, dev.json)"
    )
    parser.add_argument("--vocab", type=_given, required=True, help="vocab.txt")
    parser.add_argument(
        "--seq_length",
        type=int,
        default=128,
        help=f"fixed length of every example, at most {MAX_SEQ_LENGTH} (default 128)",
    )
    parser.add_argument(
        "--do_lower_case", default="true", choices=["true", "false"], help="default true"
    )
    parser.add_argument("--output", type=_given, required=True, help="folder to write")
    args = parser.parse_args(argv)

    def work(args):
        from .ascend310 import preprocess

        task = get_task(args.task)
        shortest = shortest_length(task.name, task.task_type)
        in_range("seq_length", args.seq_length, shortest, MAX_SEQ_LENGTH)
        vocab = regular_file(args.vocab)
        tokenizer = tokenizer_from_file(vocab, args.do_lower_case == "true")
        examples = list(task.read(args.input))
        if not examples:
            raise DeployError(f"{args.input}: no examples")
        columns = task.features(examples, tokenizer, args.seq_length)
        tokenized = {
            "vocab_size": tokenizer.vocab_size,
            "do_lower_case": args.do_lower_case == "true",
            "inputs": [str(args.input)],
        }
        preprocess(columns, task.name, task.task_type, list(task.labels), args.output, tokenized)
        logging.getLogger("tinybert_deploy").info(
            "wrote %d examples to %s", len(examples), args.output
        )

    return _run("tinybert-310-preprocess", work, args)


@quiet_on_closed_stdout
def postprocess_310(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="tinybert-310-postprocess",
        description="Score the Ascend310 app's result .bin files: accuracy, or span F1 for NER.",
    )
    parser.add_argument(
        "--data_dir", type=_given, required=True, help="folder tinybert-310-preprocess wrote"
    )
    parser.add_argument(
        "--result_dir", type=_given, required=True, help="folder of the app's <name>_0.bin results"
    )
    parser.add_argument("--output", type=_given, help="also write the result as JSON here")
    args = parser.parse_args(argv)

    def work(args):
        from .ascend310 import postprocess

        result = postprocess(args.data_dir, args.result_dir)
        print(f"{_summary(result)} ({result['count']} examples)")
        _write_report(args.output, result)

    return _run("tinybert-310-postprocess", work, args)
