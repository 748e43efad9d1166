"""The per-transaction rolling protocol of del Rio et al. (RecSys KTL 2018), as plain functions.

For every purchase transaction of a user after her first, her profile is the items of her
*previous* transactions only, and the model ranks the items that are candidates at that moment:
the catalogue minus her own earlier purchases (as full ranking masks a user's train items) and,
with ``one_of_a_kind``, minus every item anyone bought in an earlier transaction (the paper's
paintings are unique: once sold, gone, so co-occurrence cannot help). The transaction's items
that are candidates form its relevant set; a transaction with none is skipped (and counted).
Metrics are the project's own (Elliot's definitions, ``metrics/``), computed with one row per
transaction and averaged over transactions.

A transaction is what one user bought within ``window`` seconds of its first purchase (0: one
timestamp). How a model sees it: the evaluated transactions become the *users* of a profile split
(:class:`TransactionView.profiles`: row ``r``'s train items are its profile, its test items the
relevant set), so a profile-based model (``fit(data)``: VisRank, Random) is fitted and scored
through its ordinary interface; nothing in the model knows about transactions.

Why hand-written: no library implements this protocol (the paper's code is not public).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from elliot_visual.config.schema import Transactions
from elliot_visual.data.interactions import HeldOut, Interactions
from elliot_visual.evaluation.metrics.base import Metric, RankingContext, Ragged, compute_table
from elliot_visual.evaluation.ranking import TopK, csr_row_entries, rank_among
from elliot_visual.models.base import Recommender

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransactionLog:
    """Purchase transactions ordered by user, then time.

    ``users`` (T,) dense user index; ``times`` (T,) float64 time of the transaction's first
    purchase; ``ordinal`` (T,) 0-based position among the user's transactions; ``items`` the
    transaction's distinct dense item indices (row ``t`` = ``items.values[indptr[t]:indptr[t+1]]``).
    """

    users: np.ndarray
    times: np.ndarray
    ordinal: np.ndarray
    items: Ragged

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def items_of(self, t: int) -> np.ndarray:
        return self.items.values[self.items.indptr[t]:self.items.indptr[t + 1]]


def group_transactions(users: np.ndarray, items: np.ndarray, times: np.ndarray,
                       window: float = 0.0) -> TransactionLog:
    """Group purchase events ``(user, item, time)`` into transactions.

    Per user, events sorted by time; an event joins the current transaction when it happened at
    most ``window`` seconds after that transaction's first purchase, else it opens a new one.
    An item bought twice within one transaction counts once.
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    if not users.shape == items.shape == times.shape:
        raise ValueError(f"users, items and times must align; got shapes {users.shape}, {items.shape}, {times.shape}")
    if np.isnan(times).any():
        raise ValueError(f"{int(np.isnan(times).sum())} purchase events have no timestamp; the "
                         "transactions protocol needs a time for every event")
    if window < 0:
        raise ValueError(f"evaluation.transactions.window must be >= 0 seconds, got {window}")
    order = np.lexsort((items, times, users))
    users, items, times = users[order], items[order], times[order]
    starts = np.empty(users.shape[0], dtype=np.float64)
    transaction = np.empty(users.shape[0], dtype=np.int64)
    current = -1
    for e in range(users.shape[0]):  # sequential by nature: a window is measured from its opening event
        if e == 0 or users[e] != users[e - 1] or times[e] - starts[current] > window:
            current += 1
            starts[current] = times[e]
        transaction[e] = current
    n = current + 1
    # within a transaction events are sorted by time then item, so duplicates may not be adjacent
    pairs = transaction * (int(items.max(initial=0)) + 1) + items
    _, first = np.unique(pairs, return_index=True)
    keep = np.zeros(users.shape[0], dtype=bool)
    keep[first] = True
    kept_tx, kept_items = transaction[keep], items[keep]
    by_tx = np.argsort(kept_tx, kind="stable")
    counts = np.bincount(kept_tx, minlength=n)
    tx_users = np.zeros(n, dtype=np.int64)
    tx_users[transaction] = users
    ordinal = np.zeros(n, dtype=np.int64)
    if n:
        new_user = np.concatenate(([True], tx_users[1:] != tx_users[:-1]))
        first_of_user = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))
        ordinal = np.arange(n) - first_of_user
    return TransactionLog(users=tx_users, times=starts[:n].copy(), ordinal=ordinal,
                          items=Ragged(np.concatenate(([0], np.cumsum(counts))), kept_items[by_tx]))


def rolling_profiles(log: TransactionLog) -> tuple[np.ndarray, Ragged]:
    """The evaluated transactions (each user's second onwards) and their profiles.

    Returns ``(rows, profiles)``: ``rows`` indices into ``log``; ``profiles`` row ``r`` = the
    distinct items of the same user's transactions before ``rows[r]``, in order of first purchase.
    """
    rows = np.flatnonzero(log.ordinal >= 1)
    values, lengths = [], []
    seen: list[int] = []
    for t in range(len(log)):
        if log.ordinal[t] == 0:
            seen = []
        else:
            values.append(np.asarray(seen, dtype=np.int64))
            lengths.append(len(seen))
        for item in log.items_of(t).tolist():
            if item not in seen:
                seen.append(item)
    indptr = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
    flat = np.concatenate(values) if values else np.zeros(0, dtype=np.int64)
    return rows, Ragged(indptr, flat)


def first_purchase_times(log: TransactionLog, n_items: int) -> np.ndarray:
    """(n_items,) time of each item's first purchase by anyone (``inf`` when never bought)."""
    first = np.full(n_items, np.inf)
    per_value = np.repeat(log.times, log.items.lengths)
    np.minimum.at(first, log.items.values, per_value)
    return first


def candidate_mask(log: TransactionLog, rows: np.ndarray, profiles: Ragged, n_items: int,
                   one_of_a_kind: bool, first_bought: np.ndarray | None = None) -> np.ndarray:
    """(len(rows), n_items) bool: the items transaction ``rows[r]`` may be recommended.

    Everything except the profile (the user's earlier purchases); with ``one_of_a_kind`` also
    except every item first bought (by anyone) strictly before the transaction's time.
    ``profiles`` is aligned with ``rows`` (as :func:`rolling_profiles` returns them).
    """
    mask = np.ones((rows.shape[0], n_items), dtype=bool)
    if one_of_a_kind:
        first = first_purchase_times(log, n_items) if first_bought is None else first_bought
        mask &= ~(first[None, :] < log.times[rows][:, None])
    mask[profiles.rows(), profiles.values] = False
    return mask


def purchase_events(data: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every purchase of ``data`` (train, validation and test rows) as dense (users, items, times).

    The protocol is its own rolling split, so the configured split only decides the catalogue;
    held-out items outside the catalogue are left out.
    """
    if data.train_timestamps is None:
        raise ValueError(f"dataset '{data.name}' has no timestamps on its train rows; the transactions "
                         "protocol orders purchases in time (add a timestamp column to the dataset)")
    stamps = data.train_timestamps.tocoo()
    users, items, times = [stamps.row.astype(np.int64)], [stamps.col.astype(np.int64)], [stamps.data]
    for name, part in (("validation", data.validation), ("test", data.test)):
        if part is None or len(part) == 0:
            continue
        if part.timestamps is None:
            raise ValueError(f"dataset '{data.name}': the {name} rows have no timestamps; the transactions "
                             "protocol needs a time for every purchase")
        known = part.items >= 0
        users.append(part.users[known])
        items.append(part.items[known])
        times.append(part.timestamps[known])
    return np.concatenate(users), np.concatenate(items), np.concatenate(times).astype(np.float64)


@dataclass(frozen=True)
class TransactionView:
    """The evaluated transactions of a dataset, as a profile split a model can be fitted on.

    ``rows`` (n,) indices into ``log`` of the evaluated transactions (after each user's first,
    with at least one relevant candidate), in the order of ``profiles``' users; ``profiles`` an
    :class:`Interactions` whose user ``r`` is transaction ``rows[r]`` (public id
    ``<user>@<time>``): train = its profile, test = its relevant items, catalogue = the dataset's;
    ``candidates`` (n,) number of candidate items; ``skipped`` transactions left out because none
    of their items was a candidate (repeat or one-of-a-kind purchases).
    """

    log: TransactionLog
    rows: np.ndarray
    profiles: Interactions
    candidates: np.ndarray
    one_of_a_kind: bool
    skipped: int

    def candidate_mask(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), n_items) bool for profile users ``rows`` (see :func:`candidate_mask`)."""
        profiles = _ragged_rows(self.profiles.train, rows)
        first = first_purchase_times(self.log, self.profiles.n_items)
        return candidate_mask(self.log, self.rows[rows], profiles, self.profiles.n_items,
                              self.one_of_a_kind, first)


def transaction_view(data: Interactions, options: Transactions) -> TransactionView:
    """Group ``data``'s purchases into transactions and build their rolling profiles and candidates."""
    users, items, times = purchase_events(data)
    log = group_transactions(users, items, times, options.window)
    rows, profiles = rolling_profiles(log)
    first = first_purchase_times(log, data.n_items)
    relevant_rows, relevant_items, n_candidates, keep = [], [], [], []
    block = max(1, (1 << 24) // max(1, data.n_items))
    for start in range(0, rows.shape[0], block):
        chunk = np.arange(start, min(start + block, rows.shape[0]))
        mask = candidate_mask(log, rows[chunk], _ragged_take(profiles, chunk), data.n_items,
                              options.one_of_a_kind, first)
        for local, r in enumerate(chunk):
            bought = log.items_of(int(rows[r]))
            chosen = bought[mask[local, bought]]
            if chosen.size:
                keep.append(r)
                relevant_rows.append(np.full(chosen.size, len(keep) - 1))
                relevant_items.append(chosen)
                n_candidates.append(int(mask[local].sum()))
    if not keep:
        raise ValueError(f"dataset '{data.name}': no transaction to evaluate ({len(log)} transactions, "
                         f"{rows.shape[0]} of them after a user's first, none with an item left among its "
                         f"candidates); the protocol needs users who bought at two or more times "
                         f"(window {options.window:g}s)")
    keep_arr = np.asarray(keep, dtype=np.int64)
    kept_profiles = _ragged_take(profiles, keep_arr)
    n = keep_arr.shape[0]
    tx = rows[keep_arr]
    user_ids = np.asarray([f"{data.user_ids[u]}@{t:.0f}" for u, t in zip(log.users[tx], log.times[tx])],
                          dtype=object)
    train = sp.csr_matrix((np.ones(kept_profiles.values.shape[0], dtype=np.float32),
                           (kept_profiles.rows(), kept_profiles.values)), shape=(n, data.n_items))
    train.sort_indices()
    test_users = np.concatenate(relevant_rows) if relevant_rows else np.zeros(0, dtype=np.int64)
    test_items = np.concatenate(relevant_items) if relevant_items else np.zeros(0, dtype=np.int64)
    test = HeldOut(users=test_users.astype(np.int64), items=test_items.astype(np.int64),
                   item_ids=data.item_ids[test_items], ratings=np.ones(test_items.shape[0]),
                   timestamps=log.times[tx][test_users])
    profile_split = Interactions(name=data.name, user_ids=user_ids, item_ids=data.item_ids, train=train,
                                 test=test)
    skipped = int(rows.shape[0] - n)
    if skipped:
        logger.warning("%d of %d transactions have no item left among their candidates (bought earlier by "
                       "the same user%s) and are not evaluated", skipped, rows.shape[0],
                       " or, one of a kind, by anyone" if options.one_of_a_kind else "")
    return TransactionView(log=log, rows=tx, profiles=profile_split,
                           candidates=np.asarray(n_candidates, dtype=np.int64),
                           one_of_a_kind=options.one_of_a_kind, skipped=skipped)


@dataclass(frozen=True)
class TransactionResult:
    """``values`` cutoff -> metric column -> mean over transactions; ``per_transaction`` the same
    per evaluated transaction (NaN where a metric does not average it), aligned with
    ``view.rows``; ``recommendations`` the top-K list of every evaluated transaction."""

    values: dict[int, dict[str, float]]
    per_transaction: dict[int, dict[str, np.ndarray]]
    recommendations: TopK
    n_transactions: int
    skipped: int


def evaluate_transactions(model: Recommender, view: TransactionView, metrics: Sequence[Metric],
                          cutoffs: Sequence[int], top_k: int, *, device: torch.device = torch.device("cpu"),
                          batch_size: int = 512, lists: TopK | None = None) -> TransactionResult:
    """Fit ``model`` on the rolling profiles, rank each transaction's candidates, average the metrics.

    ``model`` must be a profile-based model (``fit(data)``); a gradient model would be trained on
    the profiles of all transactions at once, which sees the future, and is refused. ``lists``:
    this model's lists ranked earlier by :func:`rank_transactions` (with positions when a metric
    needs them), to add metrics without scoring again.
    """
    wants_positions = any(m.needs_positions for m in metrics)
    if lists is None or (wants_positions and lists.positions is None):
        lists = rank_transactions(model, view, top_k, device=device, batch_size=batch_size,
                                  positions=wants_positions)
    data = view.profiles
    relevance = data.test.relevance(data.n_users, data.n_items, 1.0)
    relevance.sort_indices()
    ctx = RankingContext.build(data, data.test, lists, 1.0, relevance=relevance, n_candidates=view.candidates)
    table = compute_table(ctx, list(metrics), list(cutoffs))
    values = {k: {col: v.value for col, v in row.items()} for k, row in table.items()}
    per = {k: {col: v.per_user for col, v in row.items() if v.per_user is not None} for k, row in table.items()}
    return TransactionResult(values=values, per_transaction=per, recommendations=lists,
                             n_transactions=data.n_users, skipped=view.skipped)


def rank_transactions(model: Recommender, view: TransactionView, top_k: int, *,
                      device: torch.device = torch.device("cpu"), batch_size: int = 512,
                      positions: bool = False) -> TopK:
    """Fit ``model`` on the rolling profiles and rank the candidates of every evaluated transaction.

    Returns the top-``top_k`` of each (row ``r`` = ``view.rows[r]``) and, with ``positions``, the
    full-rank position of every relevant item (AUC).
    """
    if model.is_gradient_model():
        raise ValueError(f"model {model.family} trains through loss(batch); the transactions protocol serves "
                         "profile-based models with fit(data) (VisRank, Random): a gradient model fitted on "
                         "every rolling profile at once would learn from later purchases")
    data = view.profiles
    model.fit(data)
    model.eval()
    relevance = data.test.relevance(data.n_users, data.n_items, 1.0)
    relevance.sort_indices()
    n = data.n_users
    items = np.full((n, top_k), -1, dtype=np.int64)
    scores = np.full((n, top_k), -np.inf, dtype=np.float32)
    found = np.empty(relevance.nnz, dtype=np.int64) if positions else None
    # Batches of similar profile length: a batch is padded to its longest profile, so sorting by
    # length cuts the work of profile-based scoring (VisRank's (batch, profile, items) block).
    order = np.argsort(np.diff(data.train.indptr), kind="stable")
    for start in range(0, n, batch_size):
        rows = order[start:start + batch_size]
        allowed = sp.csr_matrix(view.candidate_mask(rows))
        block = _ranked_block(model, rows, allowed, relevance[rows] if positions else None, top_k, device)
        items[rows], scores[rows] = block.items, block.scores
        if found is not None:
            found[csr_row_entries(relevance, rows)[2]] = block.positions
    return TopK(users=np.arange(n, dtype=np.int64), items=items, scores=scores, positions=found)


def _ranked_block(model: Recommender, rows: np.ndarray, allowed: sp.csr_matrix,
                  relevant: sp.csr_matrix | None, top_k: int, device: torch.device) -> TopK:
    """Top-k of profile users ``rows`` among their ``allowed`` items (local row i = ``rows[i]``)."""
    global_rows = torch.as_tensor(rows, dtype=torch.long, device=device)

    def score(local: torch.Tensor) -> torch.Tensor:
        return model.score(global_rows[local])

    return rank_among(score, allowed, top_k, batch_size=max(1, rows.shape[0]), device=device,
                      relevant=relevant)


def _ragged_take(ragged: Ragged, rows: np.ndarray) -> Ragged:
    lengths = ragged.lengths[rows]
    indptr = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
    if not rows.shape[0]:
        return Ragged(indptr, np.zeros(0, dtype=np.int64))
    values = np.concatenate([ragged.values[ragged.indptr[r]:ragged.indptr[r + 1]] for r in rows])
    return Ragged(indptr, values.astype(np.int64))


def _ragged_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> Ragged:
    sub = matrix[rows]
    return Ragged(sub.indptr.astype(np.int64), sub.indices.astype(np.int64))
