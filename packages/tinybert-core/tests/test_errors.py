"""One error base; DataError names file and line, in either of its two forms."""

import pickle

from tinybert_core import DataError, TinybertError


def test_data_error_names_file_and_line():
    error = DataError("train.tsv", 7, "expected 2 tab-separated columns, found 3")
    assert str(error) == "train.tsv:7: expected 2 tab-separated columns, found 3"
    assert (error.path, error.line, error.message) == (
        "train.tsv",
        7,
        "expected 2 tab-separated columns, found 3",
    )
    assert str(DataError("corpus.txt", None, "no text")) == "corpus.txt: no text"


def test_data_error_with_a_message_only():
    error = DataError("sst2/train: no rows")
    assert str(error) == "sst2/train: no rows"
    assert (error.path, error.line, error.message) == (None, None, "sst2/train: no rows")


def test_data_error_is_the_base_and_a_value_error_and_crosses_processes():
    error = DataError("dev.json", 3, "invalid JSON")
    assert isinstance(error, TinybertError) and isinstance(error, ValueError)
    assert str(pickle.loads(pickle.dumps(error))) == "dev.json:3: invalid JSON"
