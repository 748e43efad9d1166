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

Two settings serve the ImgRec / DVBPR protocol (not Elliot's keys, defaults keep Elliot's
behaviour): ``exclude_all_held_out`` also keeps the user's items of the *other* held-out part out
of the negatives (validation items when testing, test items when validating); ``auc: pairwise``
replaces AUC and GAUC by eq. 6 of the ImgRec paper, the share of (held-out item, negative) pairs
where the held-out item scores higher, ties counted as lost (``ties: strict``, the papers' '>') or
as ½ (``ties: half``): per pair (N − A − w·T) / N with N the user's negatives, A those scoring
above and T those tied. AUC is the micro mean over pairs, GAUC the mean over users of their
pairs' mean (equal with one held-out item per user). HR, nDCG... rank the same candidate lists.
``extra_num_items: [500]`` adds the test metrics against 500 negatives as ``<metric>_neg500``
columns (and ``<metric>_neg500_std``), drawn after the main trials from the same seeded stream.
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
from elliot_visual.evaluation.metrics.base import Metric, MetricValue, RankingContext, compute_table
from elliot_visual.evaluation.ranking import ScoreFn, csr_row_entries, rank_among

PAIRWISE = ("AUC", "GAUC")  # the metrics ``auc: pairwise`` computes as eq. 6 of ImgRec


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
                     rng: np.random.Generator, also_excluded: HeldOut | None = None) -> sp.csr_matrix:
    """(n_users, n_items) bool CSR: up to ``n_negatives`` sampled negatives per evaluated user,
    uniform without replacement among the items outside her train and held-out sets (and
    ``also_excluded``'s items, e.g. the other held-out part) (the one negative-sampling routine,
    :func:`elliot_visual.data.negatives.draw_negatives`)."""
    rows, cols = draw_negatives(excluded_items(data, held_out, also_excluded), held_out.user_set(), n_negatives,
                                rng, replace=False)
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
        other = _other_part(data, held_out) if sampling.exclude_all_held_out else None
        negative_sets = [sample_negatives(data, held_out, sampling.num_items, rng, other)
                         for _ in range(sampling.trials)]
    pairwise = sampling.auc == "pairwise" and any(m.name in PAIRWISE for m in metrics)
    if pairwise:  # AUC and GAUC come from the pair counts: full-rank positions only for other metrics
        needs_positions = any(m.needs_positions and m.name not in PAIRWISE for m in metrics)
    tables = []
    for negatives in negative_sets:
        candidates = _candidates(data, held_out, negatives)
        counter = _PairCounter(score_fn, candidates, relevance) if pairwise else None
        top = rank_among(counter or score_fn, candidates, top_k, users=users, batch_size=batch_size, device=device,
                         relevant=relevance if needs_positions else None)
        ctx = RankingContext.build(data, held_out, top, relevance_threshold, relevance=relevance,
                                   n_candidates=np.diff(candidates.indptr)[top.users], features=features)
        if counter is None:
            tables.append(compute_table(ctx, metrics, cutoffs))
            continue
        table = compute_table(ctx, [m for m in metrics if m.name not in PAIRWISE], cutoffs)
        pair_values = counter.auc_values(users, 0.5 if sampling.ties == "half" else 1.0)
        tables.append({k: {m.column(k): pair_values[m.name] if m.name in PAIRWISE else table[k][m.column(k)]
                           for m in metrics} for k in cutoffs})
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
    if part == "test":
        for count in sampling.extra_num_items:
            extra = evaluate_sampled(score_fn, data, held_out, sampling.model_copy(
                update={"num_items": count, "extra_num_items": []}), metrics, cutoffs, top_k, relevance_threshold,
                part=part, device=device, batch_size=batch_size, features=features)
            for k in cutoffs:
                for column, value in extra.values[k].items():
                    name, std = (column[:-4], "_std") if column.endswith("_std") else (column, "")
                    values[k][f"{name}_neg{count}{std}"] = value
    return SampledResult(values=values, per_user=per_user, users=users, trials=len(tables))


def _other_part(data: Interactions, held_out: HeldOut) -> HeldOut | None:
    """The held-out part of ``data`` that ``held_out`` is not (test <-> validation), if any."""
    if held_out is data.test:
        return data.validation
    return data.test if held_out is data.validation else None


class _PairCounter:
    """A score function wrapper that, for every block the ranking scores, counts per (user,
    relevant candidate) pair the user's negatives scoring above and tied (``auc: pairwise``)."""

    def __init__(self, score_fn: ScoreFn, candidates: sp.csr_matrix, relevance: sp.csr_matrix) -> None:
        self.score_fn = score_fn
        relevant = sp.csr_matrix(relevance.astype(bool).multiply(candidates.astype(bool)))
        relevant.eliminate_zeros()
        relevant.sort_indices()
        negatives = sp.csr_matrix(candidates.astype(bool)) - relevant
        negatives.eliminate_zeros()
        negatives.sort_indices()
        self.relevant, self.negatives = relevant, negatives
        self.pairs: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}  # user -> (above, tied, n_neg)

    def __call__(self, users: torch.Tensor) -> torch.Tensor:
        scores = self.score_fn(users)
        block = users.cpu().numpy()
        values = scores.detach().to("cpu", torch.float32).numpy()
        rel_rows, rel_items, _ = csr_row_entries(self.relevant, block)
        neg_rows, neg_items, _ = csr_row_entries(self.negatives, block)
        n_neg = np.bincount(neg_rows, minlength=block.shape[0])
        # Each row's negative scores, padded with NaN (which compares False): (b, max negatives).
        padded = np.full((block.shape[0], max(1, int(n_neg.max(initial=0)))), np.nan, dtype=np.float32)
        slot = np.arange(neg_rows.shape[0]) - np.repeat(np.cumsum(n_neg) - n_neg, n_neg)
        padded[neg_rows, slot] = values[neg_rows, neg_items]
        own = values[rel_rows, rel_items][:, None]
        others = padded[rel_rows]
        above, tied = (others > own).sum(1), (others == own).sum(1)
        starts = np.searchsorted(rel_rows, np.arange(block.shape[0]), side="left")
        ends = np.searchsorted(rel_rows, np.arange(block.shape[0]), side="right")
        for row, user in enumerate(block):
            self.pairs[int(user)] = (above[starts[row]:ends[row]], tied[starts[row]:ends[row]], int(n_neg[row]))
        return scores

    def auc_values(self, users: np.ndarray, tie_weight: float) -> dict[str, MetricValue]:
        """Eq. 6 AUC (micro mean over pairs) and GAUC (mean over users, per user values aligned
        with ``users``) from the counted pairs (see the module docstring)."""
        terms, per_user = [], np.full(users.shape[0], np.nan)
        for slot, user in enumerate(users):
            above, tied, n_neg = self.pairs.get(int(user), (np.zeros(0), np.zeros(0), 0))
            if n_neg == 0 or above.size == 0:
                continue
            user_terms = (n_neg - above - tie_weight * tied) / n_neg
            terms.append(user_terms)
            per_user[slot] = user_terms.mean()
        pooled = np.concatenate(terms) if terms else np.zeros(0)
        answered = ~np.isnan(per_user)
        return {"AUC": MetricValue(float(pooled.mean()) if pooled.size else float("nan")),
                "GAUC": MetricValue(float(per_user[answered].mean()) if answered.any() else float("nan"), per_user)}


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
