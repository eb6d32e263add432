"""Renaming tensors between a format's names and ours, with every check in one place.

The format modules (huggingface, google, zoo) only find their files, prefixes and config;
`import_tensors` and `export_tensors` do the renaming, transposing and checking.
"""

from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from ..checkpoint import check_tensors
from ..config import BertConfig
from ..errors import CheckpointError, name_some
from ..names import count_layers, head_names, ignored_names, name_pairs

log = logging.getLogger(__name__)


def _no_transpose(name: str) -> bool:
    return False


def import_tensors(
    tensors: dict,
    *,
    fmt: str,
    architecture: str,
    config: BertConfig,
    backbone_prefix: str,
    head_prefix: str = "",
    zoo_word: str = "bert_",
    transposed: Callable[[str], bool] = _no_transpose,
    ignore=frozenset(),
    strict: bool = True,
    source: str = "",
) -> tuple[dict, str]:
    """Rename a format's tensors to ours for `architecture`.

    Returns (our tensors, the architecture converted). Missing encoder tensors and names we
    don't know are errors; missing head tensors are an error when `strict`, else the
    encoder alone is converted. `ignore` names tensors to leave out silently (optimizer
    slots, buffers; a token classifier's pooler is always left out). Shapes are checked
    against `config`.
    """
    ignore = set(ignore) | ignored_names(architecture, fmt, backbone_prefix, zoo_word)

    def pairs_for(arch):
        return name_pairs(
            fmt, arch, config.num_hidden_layers, backbone_prefix, head_prefix, zoo_word
        )

    pairs = pairs_for(architecture)
    heads = head_names(fmt, architecture, head_prefix)
    missing_heads = sorted(heads - set(tensors))
    if missing_heads:
        if strict:
            raise CheckpointError(
                f"{source}: {architecture} head tensors missing: {', '.join(missing_heads)} "
                "(--no-strict converts the encoder alone)"
            )
        log.warning("%s: no complete %s head; converting the encoder alone", source, architecture)
        architecture = "BertModel"
        pairs = pairs_for(architecture)

    missing = [theirs for _, theirs in pairs if theirs not in tensors]
    if missing:
        raise CheckpointError(f"{source}: missing tensors: {name_some(missing)}")
    used = {theirs for _, theirs in pairs}
    unknown = sorted(set(tensors) - used - heads - ignore)
    if unknown:
        raise CheckpointError(f"{source}: unknown tensors: {name_some(unknown)}")

    _check_width(tensors, pairs, config, source)
    ours = {}
    for our_name, their_name in pairs:
        value = tensors[their_name]
        ours[our_name] = value.T.copy() if transposed(their_name) else value
    check_tensors(ours, config, architecture, source)
    check_finite({their: tensors[their] for _, their in pairs}, source)
    return ours, architecture


def _check_width(tensors: dict, pairs, config: BertConfig, source: str) -> None:
    """The config's vocabulary and width against the word embeddings, in one line: a config
    that lacks or misstates them would otherwise fail as a mismatch of every tensor."""
    for ours, theirs in pairs:
        if ours.endswith("embeddings.word_embeddings.embedding_table"):
            shape = tuple(tensors[theirs].shape)
            if shape != (config.vocab_size, config.hidden_size):
                raise CheckpointError(
                    f"{source}: the word embeddings {theirs} are {' x '.join(map(str, shape))} "
                    f"but the config says vocab_size {config.vocab_size}, hidden_size "
                    f"{config.hidden_size}"
                )


def check_finite(tensors: dict, source: str) -> None:
    """A NaN or an infinity in a weight spreads to every output it reaches: a model saved
    after a diverged step is refused, naming its tensors, rather than converted."""
    bad = []
    for name, value in tensors.items():
        if np.issubdtype(value.dtype, np.floating):
            count = value.size - int(np.count_nonzero(np.isfinite(value)))
            if count:
                bad.append(f"{name} ({count} of {value.size})")
    if bad:
        raise CheckpointError(
            f"{source}: weights that are NaN or infinite: {name_some(bad)} (the model was "
            "saved after training diverged, or the file is damaged)"
        )


def export_tensors(
    ours: dict,
    *,
    fmt: str,
    architecture: str,
    config: BertConfig,
    backbone_prefix: str,
    head_prefix: str = "",
    zoo_word: str = "bert_",
    transposed: Callable[[str], bool] = _no_transpose,
    source: str = "",
) -> dict:
    """Rename our tensors to a format's names; the inverse of `import_tensors`."""
    check_tensors(ours, config, architecture, source)
    pairs = name_pairs(
        fmt, architecture, config.num_hidden_layers, backbone_prefix, head_prefix, zoo_word
    )
    theirs = {}
    for our_name, their_name in pairs:
        value = ours[our_name]
        theirs[their_name] = value.T.copy() if transposed(their_name) else value
    return theirs


def check_layer_count(names, pattern: str, config: BertConfig, source: str) -> None:
    """A config that disagrees with the checkpoint about depth gets a clear message."""
    found = count_layers(names, pattern)
    if found != config.num_hidden_layers:
        raise CheckpointError(
            f"{source}: the checkpoint has {found} encoder layers but the config says "
            f"num_hidden_layers={config.num_hidden_layers}"
        )
