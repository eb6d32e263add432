"""`tinybert-convert`: checkpoint conversion from the command line.

tinybert-convert hf2ms  --input all-MiniLM-L6-v2/ --output teacher.ckpt
tinybert-convert tf2ms  --input uncased_L-12_H-768_A-12/bert_model.ckpt --output bert.ckpt
tinybert-convert zoo2ms --input tinybert_sst2.ckpt --config td_config_sst2.yaml --output s.ckpt
tinybert-convert ms2hf  --input student.ckpt --output student-hf/ --vocab vocab.txt
"""

from __future__ import annotations

import argparse
import logging
import sys

from tinybert_core import quiet_on_closed_stdout

from .checkpoint import read_checkpoint
from .config import BertConfig
from .convert import hf_to_ms, ms_to_hf, ms_to_tf, ms_to_zoo, tf_to_ms, zoo_to_ms
from .errors import CheckpointError

log = logging.getLogger("tinybert-convert")

SUBCOMMANDS = {
    "tf2ms": "Google TF1 checkpoint (model.ckpt.index + data shards) -> MindSpore .ckpt",
    "ms2tf": "MindSpore .ckpt -> Google TF1 checkpoint (+ bert_config.json), no TensorFlow needed",
    "hf2ms": "Hugging Face folder (config.json + model.safetensors or pytorch_model.bin) "
    "-> MindSpore .ckpt",
    "ms2hf": "MindSpore .ckpt -> Hugging Face folder that transformers loads",
    "zoo2ms": "MindSpore model-zoo BERT/TinyBERT .ckpt (needs --config) -> our MindSpore .ckpt",
    "ms2zoo": "our MindSpore .ckpt -> model-zoo names (default: the zoo's fine-tuned teacher)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinybert-convert",
        description="Convert BERT checkpoints between TensorFlow, Hugging Face, the MindSpore "
        "model zoo and tinybert's MindSpore format. Our .ckpt files embed their config.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, summary in SUBCOMMANDS.items():
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument("--input", required=True, help="the checkpoint to read")
        command.add_argument("--output", required=True, help="where to write the result")
        command.add_argument(
            "--config",
            help="model config: bert_config.json, HF config.json or a zoo YAML. Needed where "
            "the input has none (zoo2ms; tf2ms without bert_config.json beside the checkpoint)",
        )
        if name.endswith("2ms"):
            command.add_argument(
                "--strict",
                action=argparse.BooleanOptionalAction,
                default=True,
                help="a head (classifier, pre-training heads) with missing tensors is an error; "
                "with --no-strict the encoder alone is converted (default: --strict)",
            )
            command.add_argument(
                "--reorder_labels",
                choices=("true", "false"),
                default="false",
                help="true: put the classifier's rows (weight and bias) in the order of the task "
                "whose labels the model names, in any order (config.json's id2label, e.g. "
                "CONTRADICTION, NEUTRAL, ENTAILMENT becomes mnli's entailment, neutral, "
                "contradiction), as tinybert-td requires of a teacher; no prediction changes "
                "(default: false, the model's own order)",
            )
    commands.choices["ms2hf"].add_argument(
        "--vocab", help="vocab.txt to copy into the output folder"
    )
    commands.choices["zoo2ms"].add_argument(
        "--task_type",
        choices=["classification", "regression", "ner"],
        help="what the zoo's dense_1 head does (default: the YAML's task_type, or classification)",
    )
    commands.choices["zoo2ms"].add_argument(
        "--zoo_prefix", help="pick one encoder from a checkpoint that holds several (e.g. 'bert.')"
    )
    commands.choices["ms2zoo"].add_argument(
        "--zoo_prefix",
        default="bert.bert.",
        help="prefix of the encoder's tensors (default: bert.bert., the zoo's fine-tuned teacher; "
        "bert. for a distilled student)",
    )
    commands.choices["ms2zoo"].add_argument(
        "--zoo_word",
        default="bert_",
        choices=["bert_", "tinybert_"],
        help="the zoo's cell names: bert_ (BertModel) or tinybert_ (general-distillation student)",
    )
    return parser


def run(args) -> str:
    config = BertConfig.from_file(args.config) if args.config and args.command != "zoo2ms" else None
    reorder = getattr(args, "reorder_labels", "false") == "true"  # the *2ms commands have it
    if args.command == "tf2ms":
        return tf_to_ms(
            args.input, args.output, config=config, strict=args.strict, reorder_labels=reorder
        )
    if args.command == "ms2tf":
        return ms_to_tf(args.input, args.output, config=config)
    if args.command == "hf2ms":
        return hf_to_ms(args.input, args.output, strict=args.strict, reorder_labels=reorder)
    if args.command == "ms2hf":
        return ms_to_hf(args.input, args.output, config=config, vocab=args.vocab)
    if args.command == "zoo2ms":
        if not args.config:
            raise CheckpointError("zoo2ms: model-zoo checkpoints carry no config; pass --config")
        return zoo_to_ms(
            args.input,
            args.output,
            args.config,
            strict=args.strict,
            task_type=args.task_type,
            zoo_prefix=args.zoo_prefix,
            reorder_labels=reorder,
        )
    return ms_to_zoo(
        args.input, args.output, config=config, zoo_prefix=args.zoo_prefix, zoo_word=args.zoo_word
    )


def describe(path) -> str:
    checkpoint = read_checkpoint(path)
    parameters = sum(v.size for v in checkpoint.tensors.values())
    config = checkpoint.config
    shape = ""
    if config:
        shape = f"{config.num_hidden_layers} layers, hidden {config.hidden_size}, "
        shape += f"vocab {config.vocab_size}, "
    return f"{shape}{parameters / 1e6:.1f}M parameters"


@quiet_on_closed_stdout
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        architecture = run(args)
    except BrokenPipeError:  # quiet_on_closed_stdout's to handle
        raise
    except (CheckpointError, OSError) as error:
        print(f"tinybert-convert {args.command}: error: {error}", file=sys.stderr)
        return 1
    summary = describe(args.output) if args.command.endswith(("2ms", "2zoo")) else architecture
    log.info("wrote %s: %s (%s)", args.output, architecture, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
