"""Issue 35: pytorch_model.bin read without torch, bit for bit as torch loads it, and never run.

The fixtures were written by real torch (fixtures/make_torch_fixtures.py); the safetensors
beside them hold the same tensors as torch loads them, so every comparison here is against
torch without needing it.
"""

import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import FIXTURES
from safetensors.numpy import load_file

from tinybert_model import CheckpointError, hf_to_ms, read_checkpoint, read_torch_checkpoint
from tinybert_model.cli import main

TORCH = FIXTURES / "torch"
MALICIOUS = TORCH / "malicious"


def assert_bit_exact(tensors: dict, reference: dict):
    assert list(tensors) == list(reference) or set(tensors) == set(reference)
    for name, value in reference.items():
        assert tensors[name].dtype == value.dtype, name
        assert tensors[name].shape == value.shape, name
        assert tensors[name].tobytes() == value.tobytes(), name  # NaN-safe, -0.0-safe


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_every_dtype_and_view_is_bit_exact(layout):
    tensors = read_torch_checkpoint(TORCH / f"views_{layout}.bin")
    reference = load_file(str(TORCH / "views.safetensors"))
    assert_bit_exact(tensors, reference)
    # the cases the file exists for
    np.testing.assert_array_equal(tensors["transposed"], tensors["base"].T)
    np.testing.assert_array_equal(tensors["offset_block"], tensors["base"][2:5, 1:4])
    np.testing.assert_array_equal(tensors["every_other"], tensors["base"][::2, ::2])
    assert (
        tensors["expanded"].tolist() == [list(range(7))] and tensors["expanded"].dtype == np.int64
    )
    assert tensors["int64"][0, 0] == -(2**62) and tensors["float16"].dtype == np.float16
    assert tensors["empty"].shape == (0, 4) and tensors["scalar"].shape == ()
    assert all(value.flags.c_contiguous and value.flags.writeable for value in tensors.values())


def test_bfloat16_comes_back_as_the_same_values_in_float32():
    """numpy has no bfloat16: each value is the upper half of a float32, as torch's .float()."""
    tensors = read_torch_checkpoint(TORCH / "views_zip.bin")
    widened = tensors["bfloat16"]
    assert widened.dtype == np.float32
    assert not (widened.view(np.uint32) & 0xFFFF).any()  # nothing below bfloat16's 16 bits
    special = widened[-8:]
    assert special[6] == np.inf and np.isnan(special[7]) and np.signbit(special[1])
    model = read_torch_checkpoint(TORCH / "hf_cls_bf16" / "pytorch_model.bin")
    assert_bit_exact(model, load_file(str(TORCH / "hf_cls_bf16.safetensors")))


def test_tensors_sharing_a_storage_come_back_equal_and_separate():
    """A tied decoder is one storage under two names in the file."""
    tensors = read_torch_checkpoint(TORCH / "hf_mlm_tied" / "pytorch_model.bin")
    decoder = tensors["cls.predictions.decoder.weight"]
    embeddings = tensors["bert.embeddings.word_embeddings.weight"]
    np.testing.assert_array_equal(decoder, embeddings)
    assert not np.shares_memory(decoder, embeddings)
    reference = load_file(str(FIXTURES / "hf_tiny_mlm" / "model.safetensors"))
    np.testing.assert_array_equal(
        tensors["cls.predictions.decoder.bias"], reference["cls.predictions.bias"]
    )
    with zipfile.ZipFile(TORCH / "hf_mlm_tied" / "pytorch_model.bin") as archive:
        stored = [n for n in archive.namelist() if "/data/" in n]
    assert len(stored) == len(tensors) - 2  # the file really holds one storage for two names


@pytest.mark.parametrize("folder", ["hf_cls_zip", "hf_cls_legacy", "hf_cls_sharded"])
def test_hf2ms_of_a_bin_folder_equals_the_safetensors_one(folder, tmp_path):
    assert hf_to_ms(TORCH / folder, tmp_path / "bin.ckpt") == "BertForSequenceClassification"
    hf_to_ms(FIXTURES / "hf_tiny_cls", tmp_path / "safetensors.ckpt")
    converted = read_checkpoint(tmp_path / "bin.ckpt")
    reference = read_checkpoint(tmp_path / "safetensors.ckpt")
    assert converted.config == reference.config
    assert_bit_exact(converted.tensors, reference.tensors)


def test_hf2ms_of_a_tied_masked_lm_bin(tmp_path):
    assert hf_to_ms(TORCH / "hf_mlm_tied", tmp_path / "bin.ckpt") == "BertForMaskedLM"
    hf_to_ms(FIXTURES / "hf_tiny_mlm", tmp_path / "safetensors.ckpt")
    assert_bit_exact(
        read_checkpoint(tmp_path / "bin.ckpt").tensors,
        read_checkpoint(tmp_path / "safetensors.ckpt").tensors,
    )


def test_a_sharded_checkpoint_is_read_whole():
    tensors = read_torch_checkpoint(TORCH / "hf_cls_sharded" / "pytorch_model.bin.index.json")
    reference = load_file(str(FIXTURES / "hf_tiny_cls" / "model.safetensors"))
    positions = tensors.pop("bert.embeddings.position_ids")  # the buffer old transformers kept
    assert positions.dtype == np.int64 and positions.tolist() == [list(range(40))]
    assert_bit_exact(tensors, reference)


# ---- loading never runs anything --------------------------------------------------------

REFUSED = {
    "os_system_zip.bin": "posix.system",
    "os_system_legacy.bin": "posix.system",
    "magic_number_legacy.bin": "posix.system",  # the legacy layout's first pickle
    "exec_zip.bin": "builtins.exec",
    "subprocess_zip.bin": "subprocess.call",
    "load_from_bytes_zip.bin": "torch.storage._load_from_bytes",
}


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """The file each malicious fixture's command (touch "$TINYBERT_PICKLE_MARKER") creates."""
    path = tmp_path / "marker"
    monkeypatch.setenv("TINYBERT_PICKLE_MARKER", str(path))
    return path


def test_the_malicious_fixtures_run_their_command_when_unpickled(marker):
    """Proof that the refusals below matter: plain pickle runs these files' payloads."""
    legacy = (
        "import pickle, sys\n"
        "with open(sys.argv[1], 'rb') as f:\n"
        "    for _ in range(4): pickle.load(f)\n"
    )
    for script, path in [
        (legacy, MALICIOUS / "os_system_legacy.bin"),
        (legacy, MALICIOUS / "magic_number_legacy.bin"),
        ("import pickle, sys, zipfile\n"
         "pickle.loads(zipfile.ZipFile(sys.argv[1]).read('archive/data.pkl'))\n",
         MALICIOUS / "subprocess_zip.bin"),
    ]:  # fmt: skip
        subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True)
        assert marker.exists(), path.name
        marker.unlink()


@pytest.mark.parametrize("name, called", REFUSED.items())
def test_a_pickle_calling_anything_else_is_refused_and_nothing_runs(name, called, marker):
    with pytest.raises(CheckpointError) as error:
        read_torch_checkpoint(MALICIOUS / name)
    assert str(error.value) == (
        f"{MALICIOUS / name}: refused: the pickle calls {called}, which a checkpoint of "
        "tensors never needs (loading it could run code; nothing was run)"
    )
    assert not marker.exists()


def test_a_malicious_folder_in_tinybert_convert_is_one_line_and_writes_nothing(
    tmp_path, marker, capsys
):
    folder = tmp_path / "downloaded"
    folder.mkdir()
    shutil.copyfile(FIXTURES / "hf_tiny_cls" / "config.json", folder / "config.json")
    shutil.copyfile(MALICIOUS / "os_system_zip.bin", folder / "pytorch_model.bin")
    output = tmp_path / "out" / "teacher.ckpt"
    assert main(["hf2ms", "--input", str(folder), "--output", str(output)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"tinybert-convert hf2ms: error: {folder / 'pytorch_model.bin'}: refused: the pickle "
        "calls posix.system, which a checkpoint of tensors never needs (loading it could run "
        "code; nothing was run)\n"
    )
    assert not marker.exists() and not output.parent.exists()


def test_a_stride_past_its_storage_is_refused_before_reading():
    with pytest.raises(CheckpointError, match=r"tensor weight .* reaches past its storage of 2"):
        read_torch_checkpoint(MALICIOUS / "out_of_bounds_zip.bin")


# ---- damaged files and bad indexes: one line naming the file -----------------------------


def test_damaged_files_are_one_line_naming_them(tmp_path):
    legacy = (TORCH / "views_legacy.bin").read_bytes()
    archive = (TORCH / "views_zip.bin").read_bytes()
    cases = {
        "empty.bin": (b"", "not a readable PyTorch checkpoint"),
        "text.bin": (b"hello, world\n" * 10, "not a readable PyTorch checkpoint"),
        "cut_legacy.bin": (legacy[: len(legacy) - 40], "is damaged or cut short"),
        "cut_pickle.bin": (legacy[:300], "not a readable PyTorch checkpoint"),
        "cut_zip.bin": (archive[: len(archive) // 2], "a damaged zip archive"),
        "not_a_checkpoint.bin": (pickle.dumps(12345, protocol=2), "wrong magic number"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError) as error:
            read_torch_checkpoint(path)
        assert str(error.value).startswith(f"{path}: ") and message in str(error.value), name
        assert "\n" not in str(error.value)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as other:
        other.writestr("readme.txt", "not a checkpoint")
    with pytest.raises(CheckpointError, match="a zip archive with 0 data.pkl records"):
        read_torch_checkpoint(tmp_path / "other.zip")


def test_a_state_dict_holding_other_things_is_named(tmp_path):
    with zipfile.ZipFile(TORCH / "views_zip.bin") as source:
        records = {n: source.read(n) for n in source.namelist()}
    prefix = next(n for n in records if n.endswith("data.pkl"))
    records[prefix] = pickle.dumps({"epoch": 3, "model": {}}, protocol=2)
    with zipfile.ZipFile(tmp_path / "nested.bin", "w") as target:
        for name, data in records.items():
            target.writestr(name, data)
    with pytest.raises(CheckpointError, match=r"not named tensors: epoch \(int\), model \(dict\)"):
        read_torch_checkpoint(tmp_path / "nested.bin")


def test_a_shard_index_names_only_files_in_its_folder(tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(TORCH / "hf_cls_sharded", folder)
    index_file = folder / "pytorch_model.bin.index.json"
    index = json.loads(index_file.read_text())
    outside = tmp_path / "outside.bin"
    shutil.copyfile(TORCH / "hf_cls_zip" / "pytorch_model.bin", outside)
    for shard in ("../outside.bin", str(outside)):
        name = next(iter(index["weight_map"]))
        index_file.write_text(json.dumps({"weight_map": {**index["weight_map"], name: shard}}))
        with pytest.raises(CheckpointError, match="which is not a file name in its folder"):
            hf_to_ms(folder, tmp_path / "out.ckpt")
    index_file.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="index.json: expected a JSON object, found list"):
        hf_to_ms(folder, tmp_path / "out.ckpt")
    (folder / "pytorch_model-00002-of-00002.bin").unlink()
    index_file.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="pytorch_model-00002-of-00002.bin: file not found"):
        hf_to_ms(folder, tmp_path / "out.ckpt")
    assert sorted(os.listdir(tmp_path)) == ["hf", "outside.bin"]


def test_a_folder_without_weights_names_what_it_looked_for(tmp_path):
    (tmp_path / "hf").mkdir()
    shutil.copyfile(FIXTURES / "hf_tiny_cls" / "config.json", tmp_path / "hf" / "config.json")
    with pytest.raises(
        CheckpointError,
        match="no model.safetensors, pytorch_model.bin or pytorch_model.bin.index.json",
    ):
        hf_to_ms(tmp_path / "hf", tmp_path / "out.ckpt")
