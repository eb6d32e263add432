"""Issue 33's probes of the base-install scripts: records or flags that contradict the model,
numeric options at their edges, models whose metadata contradicts their graph, tabs in
one-text input, and a reader that leaves early. Each ends with one line and exit code 1 (2
for argparse's own), prints no result and writes nothing."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import FIXTURES, SHARED_DATA, first_lines

from tinybert_data import write_task_records
from tinybert_deploy import DeployError, OnnxModel, Predictor
from tinybert_deploy.cli import eval_onnx, postprocess_310, predict, preprocess_310, quantize

VOCAB = FIXTURES / "vocab_en.txt"
SST2_MODEL = FIXTURES / "sst2_tiny.onnx"  # exported by 0.1: task and labels, no vocabulary


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Records of real dev rows, tokenized with the SST-2 model's own vocabulary: SST-2 at 64
    and 256 tokens, QNLI, and CLUENER without its task.json (as records of old versions)."""
    folder = tmp_path_factory.mktemp("records")
    sst2 = first_lines(SHARED_DATA / "sst2" / "dev.tsv", 24, folder / "sst2.tsv", header=True)
    qnli = first_lines(SHARED_DATA / "qnli" / "dev.tsv", 24, folder / "qnli.tsv", header=True)
    cluener = first_lines(SHARED_DATA / "cluener" / "dev.json", 24, folder / "c.json", header=False)
    write_task_records("sst2", [sst2], VOCAB, folder / "sst2", 64)
    write_task_records("sst2", [sst2], VOCAB, folder / "sst2_256", 256)
    write_task_records("qnli", [qnli], VOCAB, folder / "qnli", 64)
    write_task_records("cluener", [cluener], FIXTURES / "vocab_zh.txt", folder / "cluener", 64)
    (folder / "cluener" / "task.json").unlink()
    return folder


def edited_copy(records, name: str, tmp_path, **changes):
    """A copy of records folder `name` whose task.json has `changes`."""
    copy = tmp_path / name
    shutil.copytree(records / name, copy)
    info = json.loads((copy / "task.json").read_text(encoding="utf-8"))
    (copy / "task.json").write_text(json.dumps({**info, **changes}), encoding="utf-8")
    return copy


def refused(code: int, capsys, *fragments) -> str:
    """Assert a command refused its input with one line holding `fragments`, printing no
    result; returns the line."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "running on" not in line]
    assert code == 1, captured.err
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert captured.out == ""
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# ---- item 2: a score on the wrong task, and records that contradict the model ---------------


@pytest.mark.parametrize("flags", [[], ["--task", "sst2"]])
def test_records_of_another_task_are_refused(records, tmp_path, capsys, flags):
    report = tmp_path / "report.json"
    args = ["--model", str(SST2_MODEL), "--input", str(records / "qnli"), *flags]
    code = eval_onnx([*args, "--output", str(report)])
    refused(code, capsys, "holds qnli rows", "task.json says so", "not sst2")
    assert not report.exists()


def test_records_that_contradict_the_model_are_refused(records, tmp_path, capsys):
    def score(folder, *flags):
        return eval_onnx(["--model", str(SST2_MODEL), "--input", str(folder), *flags])

    relabelled = edited_copy(records, "sst2", tmp_path, labels=["neg", "pos"])
    refused(score(relabelled), capsys, "says labels ['neg', 'pos']", "scores ['0', '1']")
    cased = edited_copy(records, "sst2", tmp_path / "cased", do_lower_case=False)
    refused(score(cased), capsys, "says do_lower_case false", "do_lower_case true")
    refused(score(records / "sst2", "--seq_length", "32"), capsys, "rows are 64 tokens long")
    refused(score(records / "sst2_256"), capsys, "rows of 256 tokens, beyond the 128 positions")
    # no task.json to say the task: the labels' shape still tells a tagger's rows
    refused(score(records / "cluener"), capsys, "labels one per token", "classification model")
    # a vocabulary given for records must be the one they were tokenized with
    swapped = tmp_path / "swapped"
    shutil.copytree(records / "sst2", swapped)
    tokens = VOCAB.read_text(encoding="utf-8").split("\n")
    tokens[100], tokens[101] = tokens[101], tokens[100]
    (swapped / "vocab.txt").write_text("\n".join(tokens), encoding="utf-8")
    refused(score(swapped, "--vocab", str(VOCAB)), capsys, "which", "was tokenized with")
    # what agrees still scores
    assert score(records / "sst2") == 0
    assert "sst2 on" in capsys.readouterr().out


def test_a_task_whose_labels_are_not_the_models_is_refused(tmp_path, capsys):
    from tinybert_deploy import task_columns

    model = OnnxModel(SST2_MODEL)  # sst2: labels 0, 1
    qnli = first_lines(SHARED_DATA / "qnli" / "dev.tsv", 4, tmp_path / "dev.tsv", header=True)
    with pytest.raises(DeployError, match="qnli's labels are .* it was not trained on qnli"):
        task_columns("qnli", qnli, VOCAB, model)


# ---- item 4 and 5: numeric options have ranges -------------------------------------------


@pytest.mark.parametrize(
    "flag, value, said",
    [
        ("--batch_size", "-3", "batch_size must be a whole number from 1 to 1024, not -3"),
        ("--batch_size", "0", "batch_size must be"),
        ("--batch_size", "10000000000000", "batch_size must be"),
        ("--threads", "0", "threads must be a whole number from 1 to 256, not 0"),
        ("--threads", "-1", "threads must be"),
        ("--threads", "10000000000000", "threads must be"),
        ("--max_length", "-1", "max_length must be a whole number from 3 to 128"),
        ("--max_length", "0", "max_length must be"),
        ("--max_length", "2", "max_length must be"),
        ("--max_length", "4096", "sst2_tiny.onnx has 128 positions), not 4096"),
    ],
)
def test_predict_numeric_options_have_ranges(capsys, flag, value, said):
    code = predict(["--model", str(SST2_MODEL), "--vocab", str(VOCAB), flag, value, "a film"])
    refused(code, capsys, said)


@pytest.mark.parametrize("value", ["nan", "inf", ""])
def test_predict_numbers_that_are_not_whole_are_refused_by_the_parser(capsys, value):
    with pytest.raises(SystemExit) as stop:
        predict(["--model", str(SST2_MODEL), "--batch_size", value, "a film"])
    assert stop.value.code == 2
    assert f"argument --batch_size: invalid int value: '{value}'" in capsys.readouterr().err


def test_eval_quantize_and_310_numeric_options_have_ranges(tmp_path, capsys):
    dev = first_lines(SHARED_DATA / "sst2" / "dev.tsv", 8, tmp_path / "dev.tsv", header=True)
    base = ["--model", str(SST2_MODEL), "--vocab", str(VOCAB), "--input", str(dev)]
    refused(eval_onnx([*base, "--seq_length", "4096"]), capsys, "has 128 positions), not 4096")
    refused(eval_onnx([*base, "--seq_length", "0"]), capsys, "seq_length must be")
    refused(eval_onnx([*base, "--batch_size", "0"]), capsys, "batch_size must be")
    out = tmp_path / "q.onnx"
    code = quantize(["--model", str(SST2_MODEL), "--output", str(out), "--calibration_rows", "0"])
    refused(code, capsys, "calibration_rows must be a whole number from 1 to 1024")
    folder = tmp_path / "bins"
    for value in ("2", "1000000000"):  # too short for text; would allocate 24 x 12 GB
        args = ["--task", "sst2", "--input", str(dev), "--vocab", str(VOCAB), "--output"]
        code = preprocess_310([*args, str(folder), "--seq_length", value])
        refused(code, capsys, f"seq_length must be a whole number from 3 to 4096, not {value}")
    assert not out.exists() and not folder.exists()


def test_predictor_refuses_settings_out_of_range():
    model = OnnxModel(SST2_MODEL)
    tokenizer = model.tokenizer(VOCAB)
    with pytest.raises(DeployError, match="batch_size must be"):
        Predictor(model, tokenizer, batch_size=-3)
    with pytest.raises(DeployError, match="max_length must be"):
        Predictor(model, tokenizer, max_length=129)
    assert Predictor(model, tokenizer, max_length=128).max_length == 128


# ---- item 5: paths at their edges ------------------------------------------------------------


def test_predict_paths_at_their_edges(tmp_path, capsys):
    binary = tmp_path / "vocab.txt"
    binary.write_bytes(b"[PAD]\n\xff\xfe not text\n")
    cases = [
        (["--model", str(tmp_path)], "is a directory, not a regular file"),
        (["--model", str(tmp_path / "none.onnx")], "none.onnx: file not found"),
        (["--model", str(SST2_MODEL), "--vocab", str(tmp_path)], "is a directory"),
        (["--model", str(SST2_MODEL), "--vocab", str(binary)], "vocab.txt:2: not UTF-8"),
        (["--model", str(SST2_MODEL), "--vocab", str(VOCAB), "--input", str(tmp_path)], "is a d"),
        (["--model", str(SST2_MODEL), "--vocab", str(VOCAB), "--input", os.devnull], "device"),
    ]
    for args, said in cases:
        refused(predict([*args, *([] if "--input" in args else ["a film"])]), capsys, said)
    for flag in ("--model", "--vocab", "--input", "--task"):
        args = {"--model": str(SST2_MODEL), flag: ""}
        with pytest.raises(SystemExit):
            predict([item for pair in args.items() for item in pair])
        assert f"argument {flag}: must not be empty" in capsys.readouterr().err


def test_input_with_lone_carriage_returns_is_refused(tmp_path, capsys):
    texts = tmp_path / "mac.txt"
    texts.write_bytes(b"a fine film\ra dull one\r")  # would be one text
    code = predict(["--model", str(SST2_MODEL), "--vocab", str(VOCAB), "--input", str(texts)])
    refused(code, capsys, "mac.txt", "lone carriage return")


# ---- item 5: models whose metadata contradicts the graph -------------------------------------


def with_metadata(tmp_path, base=SST2_MODEL, **changes):
    """A copy of a committed model with metadata entries changed (None: removed)."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(base))
    metadata = {p.key: p.value for p in model.metadata_props}
    metadata.update(changes)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {k: v for k, v in metadata.items() if v is not None})
    path = tmp_path / f"model{len(list(tmp_path.glob('model*.onnx')))}.onnx"
    onnx.save(model, str(path))
    return path


def self_describing(**info):
    """The metadata export writes for a model that carries its task.json and vocabulary."""
    task_info = dict(
        task="sst2", task_type="classification", labels=["0", "1"], seq_length=64, **info
    )
    vocab = VOCAB.read_text(encoding="utf-8")
    return dict(task_info=json.dumps(task_info), vocab=vocab, seq_length="64")


@pytest.mark.parametrize(
    "changes, said",
    [
        (dict(task_info="{not json"), "task_info):1: not valid JSON"),
        (dict(task_info="[1, 2]"), "task_info): expected a JSON object, found list"),
        (dict(task_info='{"seq_length": "long"}'), "task_info): 'seq_length'"),
        (dict(labels="[0, 1"), "labels is not valid JSON"),
        (dict(labels="5"), "labels is 5, not a JSON list"),
        (dict(labels="[" * 100000 + "]" * 100000), "labels is not readable JSON"),
        (dict(labels='["0", "1", "2"]'), "it names 3 labels but the graph scores 2"),
        (dict(labels='["0", "0"]'), "name a label twice"),
        (dict(vocab_size="abc"), "vocab_size is not valid JSON"),
        (dict(vocab_size="3000"), "token id 2999, the last below its vocab_size 3000, fails"),
        (dict(do_lower_case="maybe"), "do_lower_case is not valid JSON"),
        (dict(max_position_embeddings="0"), "max_position_embeddings 0 leaves no room"),
        (dict(task_type="ner"), "task_type ner means logits of 3 dimensions but the graph gives 2"),
        (dict(task_type="ranking"), "task_type 'ranking' is none of"),
        ({**self_describing(), "seq_length": "512"}, "seq_length 512 is not within the model's"),
        ({**self_describing(), "vocab_size": "2004"}, "its vocab holds 2005 tokens but vocab_size"),
        ({**self_describing(), "task": "qnli"}, "its task entry is 'qnli' but its task_info's"),
    ],
)
def test_metadata_that_contradicts_the_graph_is_one_line(tmp_path, capsys, changes, said):
    model = with_metadata(tmp_path, **changes)
    line = refused(predict(["--model", str(model), "--vocab", str(VOCAB), "a film"]), capsys, said)
    assert line.startswith(f"tinybert-predict: error: {model}")


def test_positions_beyond_the_graphs_table_fail_with_one_line(tmp_path, capsys):
    """Metadata promising 4,096 positions of a 128-position graph: a long text fails in the
    graph, which is said in one line naming the model and both figures."""
    model = with_metadata(tmp_path, max_position_embeddings="4096")
    code = predict(["--model", str(model), "--vocab", str(VOCAB), "a fine film " * 100])
    refused(code, capsys, f"{model}: the graph failed on 1 x 302 tokens", "4096")


# ---- item 7: tabs in one-text input, pairs for pair tasks ------------------------------------


def test_a_tab_in_one_text_input_is_refused(tmp_path, capsys):
    rows = tmp_path / "dev.tsv"
    rows.write_text("a gripping film\nit is a mess\t0\n", encoding="utf-8")  # a label column
    args = ["--model", str(SST2_MODEL), "--vocab", str(VOCAB)]
    refused(predict([*args, "--input", str(rows)]), capsys, "dev.tsv line 2 holds a tab", "cut -f1")
    refused(predict([*args, "a gripping film\t1"]), capsys, "argument 1 holds a tab, but sst2")
    tagger = [
        "--model",
        str(FIXTURES / "cluener_tiny.onnx"),
        "--vocab",
        str(FIXTURES / "vocab_zh.txt"),
    ]
    refused(predict([*tagger, "北京\t上海"]), capsys, "but cluener reads one text")
    with pytest.raises(DeployError, match="input 1 is a sentence pair, but .* reads one text"):
        Predictor.from_model(SST2_MODEL, VOCAB, runtime="onnxruntime").predict(
            [("a gripping film", "1")]
        )


def test_a_pair_task_takes_exactly_one_tab(tmp_path, capsys):
    labels = ["entailment", "not_entailment"]
    model = with_metadata(
        tmp_path,
        task="qnli",
        labels=json.dumps(labels),
        task_info=json.dumps(dict(task="qnli", labels=labels)),
    )
    args = ["--model", str(model), "--vocab", str(VOCAB)]
    refused(predict([*args, "is it a film?"]), capsys, "has no tab, but qnli reads sentence pairs")
    refused(predict([*args, "is it?\tit is.\tentailment"]), capsys, "holds 2 tabs")
    refused(predict([*args, "is it?\t "]), capsys, "a text of the pair is blank")
    assert predict([*args, "is it a film?\tit is a film."]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] == ["is it a film?", "it is a film."] and result["label"] in labels


# ---- item 7: a reader that leaves early ----------------------------------------------------


@pytest.mark.parametrize(
    "args", [["--help"], ["--model", str(SST2_MODEL), "--vocab", str(VOCAB), "--input", "many"]]
)
def test_a_closed_pipe_ends_quietly(tmp_path, args):
    """`tinybert-predict --help | head`: the reader is gone before the output is written. The
    command ends as cat does there (status 141), without Python's broken-pipe report."""
    (tmp_path / "many").write_text("a fine film\n" * 5000, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as in a shell
    code = "import sys; from tinybert_deploy.cli import predict; sys.exit(predict(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=env,
    )
    process.stdout.close()  # the reader leaves before the command writes
    error = process.stderr.read().decode()
    assert process.wait() == 141
    assert "Broken pipe" not in error and "Traceback" not in error and "error" not in error


# ---- Ascend310 folders: what postprocess reads must be what task.json says ------------------


def test_postprocess_refuses_a_damaged_folder(tmp_path, capsys):
    dev = first_lines(SHARED_DATA / "sst2" / "dev.tsv", 4, tmp_path / "dev.tsv", header=True)
    data = tmp_path / "bins"
    args = ["--task", "sst2", "--input", str(dev), "--vocab", str(VOCAB), "--seq_length", "16"]
    assert preprocess_310([*args, "--output", str(data)]) == 0
    capsys.readouterr()
    labels = np.load(data / "label_ids.npy")

    def score():
        return postprocess_310(["--data_dir", str(data), "--result_dir", str(tmp_path)])

    np.save(data / "label_ids.npy", labels[:3])
    refused(score(), capsys, "label_ids.npy holds 3 rows but task.json says 4")
    np.save(data / "label_ids.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    refused(score(), capsys, "label_ids.npy: not a label array")
    np.save(data / "label_ids.npy", labels)
    (data / "02_input_mask" / "sst2_00001.bin").write_bytes(b"\x01\x00\x00\x00" * 8)
    refused(score(), capsys, "sst2_00001.bin: 8 values, expected seq_length 16")
    info = json.loads((data / "task.json").read_text(encoding="utf-8"))
    del info["num_rows"]
    (data / "task.json").write_text(json.dumps(info), encoding="utf-8")
    refused(score(), capsys, "task.json lacks num_rows")
    info["num_rows"] = 4
    info["task"] = "../../sst2"  # a task name is part of each file name postprocess reads
    (data / "task.json").write_text(json.dumps(info), encoding="utf-8")
    refused(score(), capsys, "../../sst2")
