"""Write the token ids of transformers' slow (pure-Python) BertTokenizer as a test fixture.

Run once, with transformers<5 installed (never a dependency of tinybert-data):

    /work/refvenv/bin/python tests/make_tokenizer_reference.py \
        --data /work/shared/data --output tests/fixtures/tokenizer_reference.npz

The texts are read from the shared data in the order tests/test_tokenizer_parity.py reads them;
the edge cases are stored in the fixture together with their ids.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from tokenization_cases import EDGE_CASES, PAIR_SEQ_LENGTH, qnli_pairs, sst2_sentences, tnews_titles
from transformers import BertTokenizer
from transformers.utils import logging

UNCASED_VOCAB = "vocab/bert-base-uncased-vocab.txt"
CHINESE_VOCAB = "vocab/bert-base-chinese-vocab.txt"


def ragged(rows):
    """Rows of ids as (flat uint16 ids, int32 row lengths): compact in an .npz."""
    rows = list(rows)
    return np.array([t for row in rows for t in row], np.uint16), np.array([len(r) for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the shared data folder")
    parser.add_argument("--output", type=Path, required=True, help="the .npz to write")
    args = parser.parse_args()
    logging.set_verbosity_error()  # one warning per truncated pair otherwise

    uncased = BertTokenizer(vocab_file=str(args.data / UNCASED_VOCAB), do_lower_case=True)
    cased = BertTokenizer(vocab_file=str(args.data / UNCASED_VOCAB), do_lower_case=False)
    chinese = BertTokenizer(vocab_file=str(args.data / CHINESE_VOCAB), do_lower_case=True)
    assert len(uncased.vocab) == 30522 and len(chinese.vocab) == 21128  # vocab really read

    arrays = {}
    arrays["sst2_ids"], arrays["sst2_lengths"] = ragged(
        uncased.encode(s) for s in sst2_sentences(args.data)
    )
    pairs = qnli_pairs(args.data)
    arrays["qnli_ids"], arrays["qnli_lengths"] = ragged(uncased.encode(q, s) for q, s in pairs)
    arrays["qnli_truncated_ids"], arrays["qnli_truncated_lengths"] = ragged(
        uncased.encode(q, s, truncation="longest_first", max_length=PAIR_SEQ_LENGTH)
        for q, s in pairs
    )
    arrays["tnews_ids"], arrays["tnews_lengths"] = ragged(
        chinese.encode(t) for t in tnews_titles(args.data)
    )
    for name, tokenizer in [("uncased", uncased), ("cased", cased), ("chinese", chinese)]:
        arrays[f"edge_{name}_ids"], arrays[f"edge_{name}_lengths"] = ragged(
            tokenizer.encode(text) for text in EDGE_CASES
        )
    arrays["edge_cases"] = np.frombuffer(json.dumps(EDGE_CASES).encode(), np.uint8)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
