"""Batched ranking: score a block of users, mask what may not be recommended, ``torch.topk``.

Two protocols share one engine:

* :func:`rank` — Elliot's full ranking: every catalogue item except the user's train items is a
  candidate (validation items stay candidates when testing, and vice versa).
* :func:`rank_among` — only the items stored in a per-user candidate matrix are candidates
  (the sampled-negatives protocol).

Ties are broken by the lower item index first, everywhere: inside the top-k, at the k-th place
(which of several tied items gets in) and in the full-rank positions. This is what
``tf.nn.top_k`` does in Elliot, and it makes the lists reproducible across devices.

The full-rank position of a relevant item (0-based: the number of candidates ranked above it) is
what AUC and GAUC need; it is counted from the score rows without sorting them. A relevant item
that is not a candidate (e.g. it is also a train item of the user) is placed after all the
candidates, among the non-candidates by item index — where Elliot's full-length, ``-inf``-masked
list puts it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from elliot_visual.progress import progress as progress_bar

from elliot_visual.data.interactions import Interactions

ScoreFn = Callable[[Tensor], Tensor]
"""``score_fn(users) -> (len(users), n_items)`` float scores, higher first (a model's ``score``).

The ranking masks the returned tensor in place; a view of a model's own buffer is copied first.
"""

# Upper bound on the elements of one gathered (pairs, n_items) block when counting positions.
_POSITION_BLOCK = 1 << 24
# Score elements counted against at once on the CPU when counting positions (~512 KiB: in cache).
_CACHE_BLOCK = 1 << 17


@dataclass(frozen=True)
class TopK:
    """Top-K lists of a set of users, dense indices.

    ``users`` (n,) dense user indices; ``items`` (n, K) int64 dense item indices, ``-1`` past the
    end of a list shorter than K (fewer than K candidates); ``scores`` (n, K) float32, ``-inf``
    where ``items`` is ``-1``. ``positions``, when requested, holds the 0-based full-rank position
    of every stored entry of ``relevant[users]`` (CSR order, sorted column indices).
    """

    users: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    positions: np.ndarray | None = None

    @property
    def k(self) -> int:
        return int(self.items.shape[1])

    def lengths(self) -> np.ndarray:
        """(n,) number of recommended items per user (K unless fewer candidates existed)."""
        return (self.items >= 0).sum(axis=1)

    def public_ids(self, data: Interactions) -> tuple[np.ndarray, np.ndarray]:
        """Public ids: (n,) user ids and (n, K) object array of item ids (``None`` for padding)."""
        item_ids = np.empty(self.items.shape, dtype=object)
        valid = self.items >= 0
        item_ids[valid] = data.item_ids[self.items[valid]]
        return data.user_ids[self.users], item_ids

    def as_dict(self, data: Interactions) -> dict[str, list[tuple[str, float]]]:
        """Elliot's recommendation form ``{user_id: [(item_id, score), ...]}``, best first."""
        user_ids, item_ids = self.public_ids(data)
        lengths = self.lengths()
        return {u: list(zip(item_ids[r, :lengths[r]].tolist(), self.scores[r, :lengths[r]].tolist()))
                for r, u in enumerate(user_ids)}


def rank(score_fn: ScoreFn, data: Interactions, k: int, users: np.ndarray | None = None,
         batch_size: int = 1024, device: torch.device = torch.device("cpu"), *,
         relevant: sp.csr_matrix | None = None, progress: bool = False) -> TopK:
    """Full ranking: top-``k`` of every non-train catalogue item for ``users`` (default: all).

    ``relevant`` (n_users, n_items) CSR, optional: the items whose full-rank positions to return
    in :attr:`TopK.positions` (AUC, GAUC).
    """
    return _rank(score_fn, data.n_items, k, users, data.n_users, batch_size, device,
                 mask=data.train, allowed=False, relevant=relevant, progress=progress)


def rank_among(score_fn: ScoreFn, candidates: sp.csr_matrix, k: int, users: np.ndarray | None = None,
               batch_size: int = 1024, device: torch.device = torch.device("cpu"), *,
               relevant: sp.csr_matrix | None = None, progress: bool = False) -> TopK:
    """Restricted ranking: top-``k`` among the stored entries of ``candidates`` (n_users, n_items)."""
    n_users, n_items = candidates.shape
    return _rank(score_fn, n_items, k, users, n_users, batch_size, device,
                 mask=candidates, allowed=True, relevant=relevant, progress=progress)


def csr_row_search(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Look up (row, col) pairs in a CSR with sorted indices, vectorised.

    Returns ``(found, before)``: ``found`` (m,) bool, the pair is a stored entry; ``before`` (m,)
    number of stored entries of that row with a column index smaller than ``col`` (so, when
    found, ``matrix.indptr[row] + before`` is the entry's offset in ``matrix.data``).
    """
    matrix = _sorted(matrix)
    n_cols = np.int64(matrix.shape[1])
    entry_rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    keys = entry_rows * n_cols + matrix.indices.astype(np.int64)
    wanted = rows.astype(np.int64) * n_cols + cols.astype(np.int64)
    offset = np.searchsorted(keys, wanted)
    found = np.zeros(wanted.shape, dtype=bool)
    inside = offset < keys.shape[0]
    found[inside] = keys[offset[inside]] == wanted[inside]
    return found, offset - matrix.indptr[rows]


def _sorted(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix)
    if not matrix.has_sorted_indices:
        matrix = matrix.copy()
        matrix.sort_indices()
    return matrix


def csr_row_entries(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored entries of ``matrix[rows]``, vectorised: (position in ``rows``, column, offset in
    ``matrix.data``), in row-major order."""
    starts = matrix.indptr[rows]
    counts = matrix.indptr[rows + 1] - starts
    local = np.repeat(np.arange(rows.shape[0], dtype=np.int64), counts)
    first = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    offsets = first + np.arange(local.shape[0], dtype=np.int64)
    return local, matrix.indices[offsets].astype(np.int64), offsets


def _rank(score_fn: ScoreFn, n_items: int, k: int, users: np.ndarray | None, n_users: int,
          batch_size: int, device: torch.device, *, mask: sp.csr_matrix, allowed: bool,
          relevant: sp.csr_matrix | None, progress: bool) -> TopK:
    """The engine behind :func:`rank` and :func:`rank_among` (``allowed``: mask lists candidates)."""
    if k < 1:
        raise ValueError(f"top-k length must be >= 1, got {k}")
    users = np.arange(n_users, dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
    mask = _sorted(mask)
    per_row = np.diff(mask.indptr)
    n_candidates = per_row[users] if allowed else n_items - per_row[users]
    rel = _sorted(relevant)[users] if relevant is not None else None

    items = np.empty((users.shape[0], k), dtype=np.int64)
    scores = np.empty((users.shape[0], k), dtype=np.float32)
    positions = np.empty(rel.nnz, dtype=np.int64) if rel is not None else None
    starts = range(0, users.shape[0], batch_size)
    with torch.no_grad():
        for start in progress_bar(starts, desc="ranking", unit="batch", enabled=progress):
            block = users[start:start + batch_size]
            cand = torch.as_tensor(n_candidates[start:start + batch_size], device=device)
            scores_block = _masked_scores(score_fn, block, n_items, mask, allowed, device)
            top_items, top_scores = _top_k(scores_block, k, cand)
            items[start:start + block.shape[0]] = top_items.cpu().numpy()
            scores[start:start + block.shape[0]] = top_scores.cpu().numpy()
            if rel is not None:
                lo, hi = rel.indptr[start], rel.indptr[start + block.shape[0]]
                positions[lo:hi] = _positions(scores_block, block, rel, start, mask, allowed,
                                              n_candidates[start:start + block.shape[0]])
    return TopK(users=users, items=items, scores=scores, positions=positions)


def _masked_scores(score_fn: ScoreFn, block: np.ndarray, n_items: int, mask: sp.csr_matrix,
                   allowed: bool, device: torch.device) -> Tensor:
    """(b, n_items) float scores with every non-candidate at ``-inf``."""
    scores = score_fn(torch.as_tensor(block, device=device))
    if tuple(scores.shape) != (block.shape[0], n_items):
        raise ValueError(f"score_fn returned shape {tuple(scores.shape)} for {block.shape[0]} users; "
                         f"expected ({block.shape[0]}, {n_items}) (one score per catalogue item)")
    # The rows are masked in place: a model's own parameter or a view of it is copied first.
    shared = scores.requires_grad or scores._base is not None or not scores.is_contiguous()
    scores = scores.detach()
    copied = scores.dtype != torch.float32 or scores.device.type != torch.device(device).type
    if copied:
        scores = scores.to(device=device, dtype=torch.float32).contiguous()
    elif shared:
        scores = scores.clone(memory_format=torch.contiguous_format)
    rows, cols, _ = csr_row_entries(mask, block)
    rows_t = torch.as_tensor(rows, device=device)
    cols_t = torch.as_tensor(cols, device=device)
    if allowed:
        restricted = torch.full_like(scores, -torch.inf)
        restricted[rows_t, cols_t] = scores[rows_t, cols_t]
        return restricted
    scores[rows_t, cols_t] = -torch.inf
    return scores


def _top_k(scores: Tensor, k: int, n_candidates: Tensor) -> tuple[Tensor, Tensor]:
    """(b, k) items and scores, lower index first on ties; ``-1`` / ``-inf`` past the candidates."""
    n_items = scores.shape[1]
    kk = min(k + 1, n_items)
    values, indices = torch.topk(scores, kk, dim=1)
    nan_rows = torch.isnan(values[:, 0])
    if bool(nan_rows.any()):
        raise ValueError(f"score_fn returned NaN scores for {int(nan_rows.sum())} of {scores.shape[0]} "
                         "users; check the model for diverging training (loss, learning rate)")
    # A tie straddling the k-th place: topk may have let in a higher index than a tied one left out.
    if kk > k:
        straddle = (values[:, k] == values[:, k - 1]) & (n_candidates > k)
        if bool(straddle.any()):
            rows = straddle.nonzero().squeeze(1)
            exact_values, exact_indices = torch.sort(scores[rows], dim=1, descending=True, stable=True)
            values[rows, :k] = exact_values[:, :k]
            indices[rows, :k] = exact_indices[:, :k]
    values, indices = values[:, :k], indices[:, :k]
    valid = torch.arange(values.shape[1], device=scores.device).unsqueeze(0) < n_candidates.unsqueeze(1)
    # Ties inside the list: order them by item index (sort by index, then a stable sort by score).
    if values.shape[1] > 1:
        tie_rows = ((values[:, 1:] == values[:, :-1]) & valid[:, 1:]).any(1).nonzero().squeeze(1)
        if tie_rows.numel():
            tie_values, tie_indices = values[tie_rows], indices[tie_rows]
            by_index = torch.argsort(tie_indices, dim=1)
            tie_values, tie_indices = tie_values.gather(1, by_index), tie_indices.gather(1, by_index)
            tie_values, order = torch.sort(tie_values, dim=1, descending=True, stable=True)
            values[tie_rows], indices[tie_rows] = tie_values, tie_indices.gather(1, order)
    if values.shape[1] < k:  # fewer catalogue items than k
        pad = k - values.shape[1]
        values = torch.nn.functional.pad(values, (0, pad), value=-torch.inf)
        indices = torch.nn.functional.pad(indices, (0, pad), value=-1)
        valid = torch.nn.functional.pad(valid, (0, pad), value=False)
    indices = torch.where(valid, indices, torch.full_like(indices, -1))
    values = torch.where(valid, values, torch.full_like(values, -torch.inf))
    return indices, values


def _positions(scores: Tensor, block: np.ndarray, rel: sp.csr_matrix, start: int, mask: sp.csr_matrix,
               allowed: bool, n_candidates: np.ndarray) -> np.ndarray:
    """0-based full-rank positions of the relevant entries of the block's users (CSR order)."""
    local, items, _ = csr_row_entries(rel, np.arange(start, start + block.shape[0]))
    in_mask, before = csr_row_search(mask[block], local, items)
    is_candidate = in_mask if allowed else ~in_mask
    out = np.empty(local.shape[0], dtype=np.int64)
    # Non-candidates follow every candidate, ordered by item index among themselves.
    non_cand_before = (items - before) if allowed else before
    out[~is_candidate] = n_candidates[local[~is_candidate]] + non_cand_before[~is_candidate]
    pairs = np.flatnonzero(is_candidate)
    if pairs.size:
        out[pairs] = _count_ranked_above(scores, local[pairs], items[pairs])
    return out


def _count_ranked_above(scores: Tensor, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
    """For each (row, item) pair (rows ascending): #items scoring higher + #tied items with a lower index.

    sign(s_j - s_i) summed gives #above - #below and its absolute value summed gives
    #above + #below, hence #above and #tied in two reductions. The score rows are visited in
    chunks of a few rows that fit in cache (``_CACHE_BLOCK`` elements): a chunk's first relevant
    items, then its second ones, ... are counted against the chunk while it is cached, which is
    what makes the counting cost a few passes over the scores rather than a few per relevant item.
    Pairs tied with another item are recounted exactly with the index rule.
    """
    device = scores.device
    n_rows, n_items = scores.shape
    rows_t = torch.as_tensor(rows, device=device)
    items_t = torch.as_tensor(items, device=device)
    own = scores[rows_t, items_t]
    above = torch.empty(rows.shape[0], dtype=torch.long, device=device)
    tied = torch.empty(rows.shape[0], dtype=torch.long, device=device)
    first = np.searchsorted(rows, rows, side="left")
    slot = np.arange(rows.shape[0]) - first
    chunk_rows = max(1, _CACHE_BLOCK // n_items) if device.type == "cpu" else max(1, _POSITION_BLOCK // n_items)
    buffer = torch.empty((min(chunk_rows, n_rows), n_items), dtype=scores.dtype, device=device)
    bounds = np.searchsorted(rows, np.arange(0, n_rows + chunk_rows, chunk_rows))
    for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if lo == hi:
            continue
        row_lo = c * chunk_rows
        block = scores[row_lo:row_lo + chunk_rows]
        work = buffer[:block.shape[0]]
        local = torch.as_tensor(rows[lo:hi] - row_lo, device=device)
        chunk_slots = slot[lo:hi]
        for j in range(int(chunk_slots.max()) + 1):
            pick_np = np.flatnonzero(chunk_slots == j)
            pick = torch.as_tensor(pick_np + lo, device=device)
            threshold = torch.full((block.shape[0], 1), torch.inf, dtype=scores.dtype, device=device)
            threshold[local[pick_np], 0] = own[pick]
            torch.sub(block, threshold, out=work)
            above[pick], tied[pick] = _above_and_tied(work, local[pick_np])
    chunk = max(1, _POSITION_BLOCK // n_items)
    exact = np.flatnonzero(((tied > 1) | ~torch.isfinite(own)).cpu().numpy())
    index = torch.arange(n_items, device=device).unsqueeze(0)
    for lo in range(0, exact.shape[0], chunk):
        pick = torch.as_tensor(exact[lo:lo + chunk], device=device)
        gathered = scores[rows_t[pick]]
        level = own[pick].unsqueeze(1)
        ahead = (gathered > level) | ((gathered == level) & (index < items_t[pick].unsqueeze(1)))
        above[pick] = ahead.sum(1)
    return above.cpu().numpy()


def _above_and_tied(differences: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """From (m, n) differences s_j - s_i (overwritten): #positive and #zero of the given rows."""
    n_items = differences.shape[1]
    differences.sign_()
    balance = differences.sum(1)[rows]
    nonzero = differences.abs_().sum(1)[rows]
    return ((balance + nonzero) / 2).long(), n_items - nonzero.long()
