"""The sampled-negatives protocol: held-out items against N sampled negatives, over T seeded trials.

For every evaluated user the candidates are her held-out items (in the catalogue, not in her train
set) plus N negatives drawn uniformly without replacement from the catalogue items that are
neither in her train set nor held out (all of them when fewer than N exist). The model's scores
are ranked among those candidates only, and the same metric classes are computed on that
restricted ranking (AUC's N_neg becomes #candidates − |Rel_u| + 1). With ``strategy: random`` this
is repeated ``trials`` times from one ``np.random.default_rng(seed)`` stream (so the negatives do
not depend on the device or the batch size) and the mean and standard deviation over trials are
reported as ``<metric>`` and ``<metric>_std``. ``strategy: fixed`` reads the negatives from Elliot's
files (one line per user: ``(user,)<TAB>item<TAB>item...``; ``files[0]`` for test, ``files[1]`` for
validation) and runs a single trial.
"""
from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from elliot_visual.config.schema import NegativeSampling
from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.data.negatives import draw_negatives, excluded_items
from elliot_visual.evaluation.metrics.base import Metric, RankingContext, compute_table
from elliot_visual.evaluation.ranking import ScoreFn, rank_among


@dataclass(frozen=True)
class SampledResult:
    """``values`` cutoff -> column -> mean over trials, each followed by ``<column>_std``;
    ``per_user`` cutoff -> column -> (n,) per-user mean over trials (NaN where not averaged),
    aligned with ``users`` (dense indices of the evaluated users)."""

    values: dict[int, dict[str, float]]
    per_user: dict[int, dict[str, np.ndarray]]
    users: np.ndarray
    trials: int


def sample_negatives(data: Interactions, held_out: HeldOut, n_negatives: int,
                     rng: np.random.Generator) -> sp.csr_matrix:
    """(n_users, n_items) bool CSR: up to ``n_negatives`` sampled negatives per evaluated user,
    uniform without replacement among the items outside her train and held-out sets (the one
    negative-sampling routine, :func:`elliot_visual.data.negatives.draw_negatives`)."""
    rows, cols = draw_negatives(excluded_items(data, held_out), held_out.user_set(), n_negatives, rng,
                                replace=False)
    return sp.csr_matrix((np.ones(rows.shape[0], dtype=bool), (rows, cols)), shape=(data.n_users, data.n_items))


def read_negatives(path: Path, data: Interactions) -> sp.csr_matrix:
    """(n_users, n_items) bool CSR of the negatives listed in an Elliot negatives file.

    Lines are ``(user,)<TAB>item<TAB>item...`` (or a bare user id first); users and items unknown
    to the split are skipped, as Elliot does.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"negative_sampling.files: {path} does not exist; write it with "
                                "strategy: random or fix the path")
    rows, cols = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").split("\t")
            if not fields[0].strip():
                continue
            user = _user_field(fields[0], path, number)
            if user not in data.user_index:
                continue
            for item in fields[1:]:
                index = data.item_index.get(item.strip())
                if index is not None:
                    rows.append(data.user_index[user])
                    cols.append(index)
    return sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(data.n_users, data.n_items))


def evaluate_sampled(score_fn: ScoreFn, data: Interactions, held_out: HeldOut, sampling: NegativeSampling,
                     metrics: Sequence[Metric], cutoffs: Sequence[int], top_k: int, relevance_threshold: float,
                     *, part: str = "test", device: torch.device = torch.device("cpu"), batch_size: int = 1024,
                     features: Mapping[str, np.ndarray] | None = None) -> SampledResult:
    """Compute ``metrics`` at ``cutoffs`` under the sampled protocol (see the module docstring)."""
    users = held_out.user_set()
    relevance = held_out.relevance(data.n_users, data.n_items, relevance_threshold)
    needs_positions = any(m.needs_positions for m in metrics)
    rng = np.random.default_rng(sampling.seed)
    if sampling.strategy == "fixed":
        negative_sets = [read_negatives(_fixed_file(sampling, part), data)]
    else:
        negative_sets = [sample_negatives(data, held_out, sampling.num_items, rng) for _ in range(sampling.trials)]
    tables = []
    for negatives in negative_sets:
        candidates = _candidates(data, held_out, negatives)
        top = rank_among(score_fn, candidates, top_k, users=users, batch_size=batch_size, device=device,
                         relevant=relevance if needs_positions else None)
        ctx = RankingContext.build(data, held_out, top, relevance_threshold, relevance=relevance,
                                   n_candidates=np.diff(candidates.indptr)[top.users], features=features)
        tables.append(compute_table(ctx, metrics, cutoffs))
    values: dict[int, dict[str, float]] = {}
    per_user: dict[int, dict[str, np.ndarray]] = {}
    for k in cutoffs:
        values[k], per_user[k] = {}, {}
        for column in tables[0][k]:
            trial_values = np.array([t[k][column].value for t in tables], dtype=np.float64)
            values[k][column] = float(trial_values.mean())
            values[k][f"{column}_std"] = float(trial_values.std())
            if tables[0][k][column].per_user is not None:
                stacked = np.stack([t[k][column].per_user for t in tables])
                per_user[k][column] = _nanmean(stacked)
    return SampledResult(values=values, per_user=per_user, users=users, trials=len(tables))


def _held_matrix(data: Interactions, held_out: HeldOut) -> sp.csr_matrix:
    """(n_users, n_items) int8 CSR of ones at each user's held-out in-catalogue items."""
    inside = held_out.items >= 0
    ones = np.ones(int(inside.sum()), dtype=np.int8)
    held = sp.csr_matrix((ones, (held_out.users[inside], held_out.items[inside])), shape=(data.n_users, data.n_items))
    held.sum_duplicates()
    held.data[:] = 1
    return held


def _train_ones(data: Interactions) -> sp.csr_matrix:
    train = sp.csr_matrix(data.train, copy=True)
    train.data = np.ones(train.nnz, dtype=np.int8)
    return train


def _candidates(data: Interactions, held_out: HeldOut, negatives: sp.csr_matrix) -> sp.csr_matrix:
    """CSR, stored entries = held-out in-catalogue items that are not train items, plus the negatives."""
    held = _held_matrix(data, held_out)
    held = held - held.multiply(_train_ones(data))
    neg = sp.csr_matrix(negatives, dtype=np.int8)
    merged = (held + neg).tocsr()
    merged.eliminate_zeros()
    merged.sort_indices()
    return merged


def _fixed_file(sampling: NegativeSampling, part: str) -> Path:
    wanted = 1 if part == "validation" else 0
    if len(sampling.files) <= wanted:
        raise ValueError(f"negative_sampling.strategy fixed needs files[{wanted}] for the {part} negatives "
                         f"(files[0]: test, files[1]: validation); got {len(sampling.files)} file(s)")
    return sampling.files[wanted]


def _user_field(text: str, path: Path, number: int) -> str:
    text = text.strip()
    if not text.startswith("("):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"{path}:{number}: cannot read the user field {text!r}; expected (user,)") from None
    return str(value[0] if isinstance(value, tuple) else value)


def _nanmean(stacked: np.ndarray) -> np.ndarray:
    """Column mean ignoring NaN; NaN where every trial is NaN (no warning)."""
    counts = (~np.isnan(stacked)).sum(axis=0)
    sums = np.nansum(stacked, axis=0)
    return np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)
