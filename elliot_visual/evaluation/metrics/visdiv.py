"""VisDiv@k: how far, in a 2-D map of item visual features, a user's recommendations sit from her taste.

The CNNs-in-VRSs study (Malitesta et al.) defines it per user u: project the visual features of
u's training positives P_u and of her top-k list L_u@k to 2-D with t-SNE, take the centroid of each
set and measure the Euclidean distance between the two centroids; VisDiv@k is the mean over users.
A low value means the recommendations look like what the user already liked.

Two projection modes (option ``projection``), named in the report column (:meth:`VisDiv.column`):

* ``per_user`` — the study's exact method (its Table 2): one scikit-learn t-SNE per user over
  ``P_u ∪ L_u@k`` (2 components, seed 1234, random init, learning rate 200, perplexity 30 lowered
  to ``n - 1`` for a user with ``n <= 30`` points, 1000 iterations), users run in parallel with
  joblib. Coordinates of different users (and models) live in different maps.
* ``global`` — the catalogue is projected once per feature set (PCA to 50 dimensions, then openTSNE,
  the faster of the two implementations on large catalogues: see ``benchmarks/visdiv.py``), and
  the map is cached on disk keyed by the feature values, the projected items and the settings, so
  distances are comparable across users, models and cutoffs and t-SNE runs once.
* ``identity`` — no t-SNE: the (flattened) features must already be 2-D coordinates. For tests and
  for maps computed elsewhere.

Users without training positives or without recommendations are skipped (logged with counts;
``NaN`` in the per-user values, never in the mean). Recommended or positive items without feature
values are an error naming them. scikit-learn and openTSNE are used rather than a hand-written
t-SNE; what is written here is only the bookkeeping around them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from elliot_visual.progress import progress as progress_bar

from elliot_visual.data.interactions import Interactions
from elliot_visual.evaluation.metrics.base import Metric, MetricValue, RankingContext, register_metric
from elliot_visual.registry import closest_match
from elliot_visual.storage import write_json, write_npy

log = logging.getLogger(__name__)

Projection = Literal["per_user", "global", "identity"]
DEFAULT_LOADER = "VisualAttributes"
DEFAULT_KIND = "visual_features"
# Settings the study's tool ran with (scikit-learn defaults of its time, seed 1234).
STUDY_LEARNING_RATE = 200.0
STUDY_SEED = 1234
GLOBAL_PCA_COMPONENTS = 50
SMALL_MAP = 2_000


def feature_key(loader: str, kind: str) -> str:
    """The key under which VisDiv looks up an item-aligned array in ``RankingContext.features``."""
    return f"{loader}/{kind}"


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
MAX_FIGURE_SAMPLE = 50


@dataclass(frozen=True)
class TSNESettings:
    """One t-SNE run's settings. ``max_iter`` counts every iteration, the 250 early-exaggeration
    ones included (scikit-learn's convention). ``learning_rate`` may be ``"auto"`` (n / 12)."""

    perplexity: float = 30.0
    learning_rate: float | str = STUDY_LEARNING_RATE
    max_iter: int = 1000
    metric: str = "euclidean"
    seed: int = STUDY_SEED
    init: str = "random"
    implementation: Literal["sklearn", "opentsne"] = "sklearn"
    pca_components: int = 0
    n_jobs: int = -1

    def cache_fields(self) -> dict[str, Any]:
        """What determines the coordinates (``n_jobs`` does not for scikit-learn; for openTSNE it
        may, through Annoy's threaded index build, so it is part of the key)."""
        fields = asdict(self)
        if self.implementation == "sklearn":
            fields.pop("n_jobs")
        return fields


class VisDivOptions(BaseModel):
    """The keys of a ``complex_metrics: - metric: VisDiv`` entry (unknown keys are errors).

    ``loader``/``kind`` pick the feature array (a ``side_information`` entry's name and the kind
    it provides); ``flatten`` turns feature maps (ACF's (regions, channels)) into vectors: ``concat``
    as the study did, or ``mean`` over regions. ``items``: which items enter the ``global`` map
    (``all`` catalogue items, or ``train`` items only). ``cutoffs``: the cutoffs VisDiv is computed
    at (default: every evaluation cutoff; others get an empty cell). ``learning_rate``, ``init``,
    ``implementation`` and ``pca_components`` default per mode (see the module docstring).
    ``cache_folder``: where ``global`` maps are kept. ``figure_users`` / ``figure_sample`` /
    ``figure_seed``: which users' profile pictures to draw (explicit ids, else a seeded sample).
    ``label``: the column header, replacing ``VisDiv[<projection>]``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    projection: Projection = "global"
    loader: str = DEFAULT_LOADER
    kind: str = DEFAULT_KIND
    flatten: Literal["concat", "mean"] = "concat"
    items: Literal["all", "train"] = "all"
    cutoffs: list[int] | None = None
    perplexity: float = Field(30.0, gt=0)
    learning_rate: float | Literal["auto"] | None = None
    max_iter: int = Field(1000, ge=251)
    metric: str = "euclidean"
    seed: int = STUDY_SEED
    init: Literal["random", "pca"] | None = None
    implementation: Literal["sklearn", "opentsne"] | None = None
    pca_components: int | None = Field(None, ge=0)
    n_jobs: int = -1
    cache_folder: Path | None = None
    figure_users: list[str] = Field(default_factory=list)
    # Pictures are drawn one per sampled user and model: more than a page of them is a typo (and hours).
    figure_sample: int = Field(3, ge=0, le=MAX_FIGURE_SAMPLE)
    figure_seed: int = 42
    label: str | None = None

    @field_validator("cutoffs", mode="before")
    @classmethod
    def _scalar_cutoff(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    @field_validator("figure_users", mode="before")
    @classmethod
    def _ids_as_strings(cls, value: Any) -> Any:
        if isinstance(value, (str, int)):
            value = [value]
        return [str(v) for v in value]

    def tsne(self) -> TSNESettings:
        """The t-SNE settings of this entry, mode defaults filled in."""
        per_user = self.projection == "per_user"
        implementation = self.implementation or ("sklearn" if per_user else "opentsne")
        if per_user and implementation != "sklearn":
            raise ValueError("VisDiv projection per_user runs scikit-learn's t-SNE, as the study did; "
                             "remove 'implementation' or use projection: global")
        learning_rate = self.learning_rate if self.learning_rate is not None else (
            STUDY_LEARNING_RATE if per_user else "auto")
        pca = self.pca_components if self.pca_components is not None else (0 if per_user else GLOBAL_PCA_COMPONENTS)
        return TSNESettings(perplexity=self.perplexity, learning_rate=learning_rate, max_iter=self.max_iter,
                            metric=self.metric, seed=self.seed,
                            init=self.init or ("random" if per_user else "pca"),
                            implementation=implementation, pca_components=pca, n_jobs=self.n_jobs)


def parse_options(options: Mapping[str, Any]) -> VisDivOptions:
    """Validate a ``complex_metrics`` entry's options; errors name the key and the closest valid one."""
    try:
        return VisDivOptions(**dict(options))
    except ValidationError as error:
        problems = []
        for item in error.errors():
            key = ".".join(str(p) for p in item["loc"]) or "(entry)"
            message = item["msg"]
            if item["type"] == "extra_forbidden":
                close = closest_match(key, list(VisDivOptions.model_fields))
                message = "unknown key" + (f"; did you mean '{close}'?" if close else "")
            problems.append(f"{key}: {message}")
        raise ValueError("evaluation.complex_metrics VisDiv: " + "; ".join(problems)
                         + f" (VisDiv reads: {', '.join(VisDivOptions.model_fields)})") from None


# --------------------------------------------------------------------------------------------
# Pure array functions
# --------------------------------------------------------------------------------------------
def flatten_features(features: np.ndarray, how: Literal["concat", "mean"] = "concat") -> np.ndarray:
    """(n, ...) item features -> (n, d) float32 vectors.

    A feature map (n, regions, channels) is either concatenated row by row (``concat``: the study
    reshaped ACF's maps to regions * channels) or averaged over regions (``mean``: d = channels).
    """
    features = np.asarray(features)
    if features.ndim == 1:
        raise ValueError(f"VisDiv needs one feature vector per item; got a 1-D array of {features.shape[0]} values")
    if features.ndim > 2:
        if how == "mean":
            features = features.reshape(features.shape[0], -1, features.shape[-1]).mean(axis=1)
        else:
            features = features.reshape(features.shape[0], -1)
    return np.asarray(features, dtype=np.float32)


def guarded_perplexity(n_points: int, perplexity: float) -> float:
    """Perplexity for a t-SNE over ``n_points``: scikit-learn rejects values >= n, so a user with
    few items gets ``n - 1`` (every other point is a neighbour, near-uniform affinities)."""
    return float(min(perplexity, max(n_points - 1, 1)))


def tsne_2d(points: np.ndarray, settings: TSNESettings, n_jobs: int | None = None) -> np.ndarray:
    """(n, d) -> (n, 2) float64 with the configured implementation (after PCA when asked).

    With ``n_jobs == 1`` the OpenMP/BLAS pools are held to one thread too: scikit-learn's
    Barnes-Hut gradient otherwise spins on every core, which slows small maps many times over
    on a busy machine (and inside joblib workers). Maps of at most ``SMALL_MAP`` points always run
    on one thread: measured on a loaded 2-core machine, openTSNE took 20 s for 60 points with two
    threads (20 ms per gradient step) against well under a second with one.
    """
    n_jobs = settings.n_jobs if n_jobs is None else n_jobs
    if len(points) <= SMALL_MAP:  # threads cannot help a small map, and spinning ones slow it on a busy machine
        n_jobs = 1
    if n_jobs == 1:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return _tsne_2d(points, settings, 1)
    return _tsne_2d(points, settings, n_jobs)


def _tsne_2d(points: np.ndarray, settings: TSNESettings, n_jobs: int) -> np.ndarray:
    points = np.asarray(points, dtype=np.float32)
    reduce_to = settings.pca_components
    if reduce_to and points.shape[1] > reduce_to and points.shape[0] > reduce_to:
        from sklearn.decomposition import PCA

        points = PCA(reduce_to, svd_solver="randomized",
                     random_state=settings.seed).fit_transform(points).astype(np.float32)
    perplexity = guarded_perplexity(points.shape[0], settings.perplexity)
    if settings.implementation == "opentsne":
        try:
            import openTSNE
        except ImportError:
            raise ImportError("VisDiv's global map uses openTSNE, which is not installed: pip install openTSNE, "
                              "or set implementation: sklearn in the VisDiv entry") from None

        # openTSNE counts only the iterations after early exaggeration (250).
        embedding = openTSNE.TSNE(n_components=2, perplexity=perplexity, learning_rate=settings.learning_rate,
                                  n_iter=max(settings.max_iter - 250, 0), metric=settings.metric,
                                  initialization=settings.init, random_state=settings.seed,
                                  n_jobs=n_jobs, verbose=False).fit(points)
        return np.asarray(embedding, dtype=np.float64)
    return _sklearn_tsne(points.shape[0], settings, n_jobs).fit_transform(points).astype(np.float64)


def _sklearn_tsne(n_points: int, settings: TSNESettings, n_jobs: int) -> Any:
    """scikit-learn's TSNE for ``n_points`` points with ``settings`` (perplexity guarded)."""
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, perplexity=guarded_perplexity(n_points, settings.perplexity),
                learning_rate=settings.learning_rate, max_iter=settings.max_iter, metric=settings.metric,
                init=settings.init, random_state=settings.seed, n_jobs=n_jobs)


Positives = sp.spmatrix | Sequence[np.ndarray]
"""Users' training items: an (n, I) sparse matrix, or one index array per user in training order."""


def positive_lists(positives: Positives) -> list[np.ndarray]:
    """Each user's positive item indices: CSR rows (item order) or the given arrays as they are."""
    if sp.issparse(positives):
        matrix = sp.csr_matrix(positives)
        return [matrix.indices[matrix.indptr[r]:matrix.indptr[r + 1]] for r in range(matrix.shape[0])]
    return [np.asarray(p, dtype=np.int64) for p in positives]


def positive_matrix(lists: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """(n, I) binary CSR of index lists (a repeated item counts once)."""
    rows = np.repeat(np.arange(len(lists)), [len(p) for p in lists])
    cols = np.concatenate(list(lists) or [np.zeros(0, np.int64)]).astype(np.int64)
    matrix = sp.csr_matrix((np.ones(cols.shape[0]), (rows, cols)), shape=(len(lists), n_items))
    matrix.data[:] = 1.0
    return matrix


def positives_in_training_order(data: Interactions, users: np.ndarray) -> list[np.ndarray]:
    """The train items of ``users`` (dense indices) in the order of the training rows.

    t-SNE's random initialisation is drawn point by point, so the per-user map depends on the
    order of the points: the study's tool stacked a user's positives in training-file order, then
    her top-k in rank order. A repeated (user, item) row is kept once, at its first place.
    """
    frame = data.train_frame
    if frame is None or frame.empty:
        return positive_lists(data.train[users])
    u = frame["user"].map(data.user_index).to_numpy()
    i = frame["item"].map(data.item_index).to_numpy()
    ok = ~(pd.isna(u) | pd.isna(i))
    pairs = pd.DataFrame({"u": u[ok].astype(np.int64), "i": i[ok].astype(np.int64)}).drop_duplicates()
    grouped = dict(tuple(pairs.groupby("u", sort=False)["i"]))
    empty = np.zeros(0, dtype=np.int64)
    return [grouped[int(x)].to_numpy() if int(x) in grouped else empty for x in users]


def centroid_distance(positives: np.ndarray, recommended: np.ndarray) -> float:
    """Euclidean distance between the centroids of two (m, 2) point sets."""
    return float(np.linalg.norm(np.mean(positives, axis=0) - np.mean(recommended, axis=0)))


def centroid_distances(coords: np.ndarray, positives: sp.csr_matrix, recommended: np.ndarray) -> np.ndarray:
    """Per-user centroid distances in one shared map, vectorised.

    ``coords`` (I, 2) item coordinates; ``positives`` (n, I) CSR, stored entries = positive items;
    ``recommended`` (n, k) item indices, ``-1`` padding. Returns (n,), ``NaN`` for a user with no
    positive or no recommended item.
    """
    pos = sp.csr_matrix(positives, dtype=np.float64, copy=True)
    pos.data[:] = 1.0
    n_pos = np.diff(pos.indptr)
    pos_centroid = np.asarray(pos @ coords) / np.maximum(n_pos, 1)[:, None]
    valid = recommended >= 0
    n_rec = valid.sum(axis=1)
    rec_sum = (coords[np.where(valid, recommended, 0)] * valid[..., None]).sum(axis=1)
    rec_centroid = rec_sum / np.maximum(n_rec, 1)[:, None]
    out = np.linalg.norm(pos_centroid - rec_centroid, axis=1)
    out[(n_pos == 0) | (n_rec == 0)] = np.nan
    return out


def per_user_projections(features: np.ndarray, positives: Sequence[np.ndarray], recommended: Sequence[np.ndarray],
                         settings: TSNESettings, progress: bool = True) -> list[np.ndarray]:
    """One t-SNE per user over her positives then her recommendations (the study's method).

    ``features`` (I, d); ``positives[u]`` / ``recommended[u]`` item indices. Returns, per user,
    (len(positives[u]) + len(recommended[u]), 2) coordinates in that order. Users run in parallel
    (joblib, ``settings.n_jobs``); each t-SNE is single-threaded and seeded, so the result does
    not depend on the number of workers.
    """
    if settings.n_jobs == 1:
        maps = (tsne_2d(features[np.concatenate([p, r])], settings, n_jobs=1)
                for p, r in zip(positives, recommended))
    else:
        from joblib import Parallel, delayed

        # The job is the estimator's own method, so a worker imports scikit-learn only (not this
        # package and torch); loky holds each worker to one OpenMP thread when all cores are used.
        jobs = (delayed(_sklearn_tsne(len(p) + len(r), settings, 1).fit_transform)(features[np.concatenate([p, r])])
                for p, r in zip(positives, recommended))
        # Slices are small (hundreds of rows): pickling beats joblib's memory-mapping of each one.
        maps = Parallel(n_jobs=settings.n_jobs, max_nbytes=None, return_as="generator")(jobs)
    return [np.asarray(xy, dtype=np.float64) for xy in
            progress_bar(maps, total=len(positives), desc="VisDiv t-SNE per user", unit="user",
                 enabled=progress)]


def features_fingerprint(features: np.ndarray) -> str:
    """A content hash of an array (shape, dtype and bytes): the feature source part of a cache key."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((features.shape, str(features.dtype))).encode())
    contiguous = np.ascontiguousarray(features)
    flat = contiguous.reshape(-1).view(np.uint8)
    step = 1 << 26
    for start in range(0, flat.shape[0], step):
        digest.update(flat[start:start + step])
    return digest.hexdigest()


@dataclass(frozen=True)
class ProjectionCache:
    """Global maps on disk: ``<folder>/<source>_<key>.npy`` (I, 2) with a ``.json`` describing it.

    The key hashes the feature values, the projected item ids and the t-SNE settings, so a changed
    feature file or setting can never reuse a stale map. Writes are atomic (storage.py).
    """

    folder: Path

    @staticmethod
    def key(fingerprint: str, item_ids: np.ndarray, settings: TSNESettings) -> str:
        digest = hashlib.blake2b(digest_size=12)
        digest.update(fingerprint.encode())
        digest.update("\n".join(map(str, item_ids)).encode())
        digest.update(json.dumps(settings.cache_fields(), sort_keys=True).encode())
        return digest.hexdigest()

    def path(self, source: str, key: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in source) or "features"
        return self.folder / f"{safe}_{key}.npy"

    def load(self, source: str, key: str, n_items: int) -> np.ndarray | None:
        path = self.path(source, key)
        if not path.is_file():
            return None
        coords = np.load(path, allow_pickle=False)
        if coords.shape != (n_items, 2):
            log.warning("ignoring VisDiv map %s: shape %s, expected (%d, 2)", path, coords.shape, n_items)
            return None
        return coords

    def store(self, source: str, key: str, coords: np.ndarray, meta: Mapping[str, Any]) -> Path:
        path = self.path(source, key)
        write_npy(path, coords)
        write_json(path.with_suffix(".json"), dict(meta))
        return path


_memory_maps: dict[str, np.ndarray] = {}
_fingerprints: dict[int, tuple[weakref.ref, str]] = {}


def _fingerprint_cached(features: np.ndarray) -> str:
    """Fingerprint of an array object, hashed once per object per process (models share features)."""
    entry = _fingerprints.get(id(features))
    if entry is not None and entry[0]() is features:
        return entry[1]
    value = features_fingerprint(features)
    try:
        _fingerprints[id(features)] = (weakref.ref(features), value)
    except TypeError:
        pass
    return value


def project_catalogue(features: np.ndarray, item_ids: np.ndarray, settings: TSNESettings,
                      cache: ProjectionCache | None = None, source: str = "features") -> np.ndarray:
    """The ``global`` map: (I, 2) t-SNE coordinates of ``features`` (I, d), from cache when present.

    Kept in memory for the process and, with ``cache``, on disk; the key covers the feature
    values, ``item_ids`` (I,) and every setting that changes the result.
    """
    key = ProjectionCache.key(_fingerprint_cached(features), item_ids, settings)
    if key in _memory_maps:
        return _memory_maps[key]
    coords = cache.load(source, key, features.shape[0]) if cache is not None else None
    if coords is None:
        log.info("VisDiv: t-SNE of %d items (%s, %d dims) with %s", features.shape[0], source,
                 features.shape[1], settings.implementation)
        coords = tsne_2d(features, settings)
        if cache is not None:
            path = cache.store(source, key, coords, {"source": source, "n_items": int(features.shape[0]),
                                                     "feature_dim": int(features.shape[1]),
                                                     "settings": settings.cache_fields()})
            log.info("VisDiv: map cached in %s", path)
    else:
        log.info("VisDiv: reusing cached map of %d items (%s)", features.shape[0], source)
    _memory_maps[key] = coords
    return coords


# --------------------------------------------------------------------------------------------
# Per-user projections for pictures and for the metric
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UserProjection:
    """One user's positives and top-k in 2-D: ``positives`` (p, 2), ``recommended`` (r, 2)."""

    user_id: str
    positive_items: np.ndarray
    recommended_items: np.ndarray
    positives: np.ndarray
    recommended: np.ndarray

    @property
    def positive_centroid(self) -> np.ndarray:
        return self.positives.mean(axis=0)

    @property
    def recommended_centroid(self) -> np.ndarray:
        return self.recommended.mean(axis=0)

    @property
    def distance(self) -> float:
        return centroid_distance(self.positives, self.recommended)


@dataclass(frozen=True)
class VisDivComputation:
    """Per-user distances (n,) with ``NaN`` for skipped users, and the skip counts."""

    per_user: np.ndarray
    no_positives: int
    no_recommendations: int

    @property
    def value(self) -> float:
        kept = self.per_user[~np.isnan(self.per_user)]
        if kept.size == 0:
            raise ValueError("VisDiv: no evaluated user has both training positives and recommendations")
        return float(kept.mean())


class VisDivEngine:
    """VisDiv over arrays: item features (I, ...), users' positives (:data:`Positives`), top-k (n, K).

    Shared by the metric (inside an evaluation) and the offline command (saved recommendation
    files). ``item_ids`` (I,) public ids name uncovered items in errors and key the cache.
    """

    def __init__(self, options: VisDivOptions, features: np.ndarray, item_ids: np.ndarray,
                 train_items: np.ndarray | None = None, source: str | None = None,
                 progress: bool = True) -> None:
        self.options = options
        self.settings = options.tsne()
        self.features = flatten_features(features, options.flatten)
        if self.features.shape[0] != item_ids.shape[0]:
            raise ValueError(f"VisDiv: features '{feature_key(options.loader, options.kind)}' have "
                             f"{self.features.shape[0]} rows for {item_ids.shape[0]} catalogue items; "
                             "the feature array must be aligned to the dataset's items")
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.covered = np.isfinite(self.features).all(axis=1)
        self.train_items = train_items
        self.source = source or f"{options.loader}-{options.kind}"
        self.progress = progress
        self._coords: np.ndarray | None = None
        if options.projection == "identity" and self.features.shape[1] != 2:
            raise ValueError(f"VisDiv projection identity takes the features as 2-D coordinates, but "
                             f"'{feature_key(options.loader, options.kind)}' has {self.features.shape[1]} "
                             "columns; use projection: global or per_user")

    # -- coverage ------------------------------------------------------------------------------
    def _projected_mask(self) -> np.ndarray:
        mask = self.covered.copy()
        if self.options.projection == "global" and self.options.items == "train" and self.train_items is not None:
            mask &= self.train_items
        return mask

    def check_covered(self, items: np.ndarray, role: str) -> None:
        """Error naming the ``items`` (dense indices) that have no features (or are outside the map)."""
        items = np.unique(items[items >= 0])
        allowed = self._projected_mask() if self.options.projection == "global" else self.covered
        bad = items[~allowed[items]]
        if bad.size:
            names = ", ".join(map(str, self.item_ids[bad[:10]]))
            where = (" (projection items: train, and these have no train interaction)"
                     if self.options.items == "train" and self.covered[bad].all() else "")
            raise ValueError(f"VisDiv: features '{feature_key(self.options.loader, self.options.kind)}' "
                             f"do not cover {bad.size} {role} items{where}: {names}"
                             f"{' ...' if bad.size > 10 else ''}; extract features for them, drop them from "
                             "the data (data_config.drop_items_without_features), or use items: all")

    # -- maps ----------------------------------------------------------------------------------
    def catalogue_map(self) -> np.ndarray:
        """(I, 2) coordinates in the shared map (``global``/``identity``), ``NaN`` for unprojected items."""
        if self._coords is not None:
            return self._coords
        if self.options.projection == "identity":
            self._coords = self.features.astype(np.float64)
            return self._coords
        mask = self._projected_mask()
        cache = ProjectionCache(self.options.cache_folder) if self.options.cache_folder is not None else None
        projected = project_catalogue(self.features[mask], self.item_ids[mask], self.settings, cache, self.source)
        self._coords = np.full((self.features.shape[0], 2), np.nan)
        self._coords[mask] = projected
        return self._coords

    # -- the metric ----------------------------------------------------------------------------
    def compute(self, positives: Positives, recommended: np.ndarray, k: int) -> VisDivComputation:
        """VisDiv@k for n users: ``positives`` their training items ((n, I) CSR, or n index arrays in
        training-file order, the order ``per_user`` feeds them to t-SNE), ``recommended`` (n, >=k)."""
        pos_lists = positive_lists(positives)
        top = np.asarray(recommended)[:, :k]
        n_pos = np.array([len(p) for p in pos_lists], dtype=np.int64)
        n_rec = (top >= 0).sum(axis=1)
        keep = (n_pos > 0) & (n_rec > 0)
        no_pos, no_rec = int((n_pos == 0).sum()), int(((n_pos > 0) & (n_rec == 0)).sum())
        if no_pos or no_rec:
            log.warning("VisDiv@%d: skipped %d users without training positives and %d without "
                        "recommendations (of %d)", k, no_pos, no_rec, top.shape[0])
        rows = np.flatnonzero(keep)
        self.check_covered(top[keep].ravel(), "recommended")
        self.check_covered(np.concatenate([pos_lists[r] for r in rows] or [np.zeros(0, np.int64)]),
                           "positive (training)")
        per_user = np.full(top.shape[0], np.nan)
        if self.options.projection == "per_user":
            kept_pos = [pos_lists[r] for r in rows]
            rec_lists = [top[r][top[r] >= 0] for r in rows]
            maps = per_user_projections(self.features, kept_pos, rec_lists, self.settings, self.progress)
            for r, p, xy in zip(rows, kept_pos, maps):
                per_user[r] = centroid_distance(xy[:len(p)], xy[len(p):])
        else:
            matrix = positive_matrix([pos_lists[r] for r in rows], self.features.shape[0])
            per_user[keep] = centroid_distances(self.catalogue_map(), matrix, top[keep])
        return VisDivComputation(per_user, no_pos, no_rec)

    def profiles(self, positives: Positives, recommended: np.ndarray, k: int,
                 user_ids: Sequence[str]) -> list[UserProjection]:
        """The 2-D points of a few users (rows of ``positives``/``recommended``), for pictures."""
        pos_lists = positive_lists(positives)
        top = np.asarray(recommended)[:, :k]
        rec_lists = [top[r][top[r] >= 0] for r in range(top.shape[0])]
        empty = [u for u, p, r in zip(user_ids, pos_lists, rec_lists) if not len(p) or not len(r)]
        if empty:
            raise ValueError(f"VisDiv pictures: users {empty} have no training positives or no recommendations")
        self.check_covered(np.concatenate(rec_lists), "recommended")
        self.check_covered(np.concatenate(pos_lists), "positive (training)")
        if self.options.projection == "per_user":
            maps = per_user_projections(self.features, pos_lists, rec_lists, self.settings, progress=False)
        else:
            coords = self.catalogue_map()
            maps = [coords[np.concatenate([p, r])] for p, r in zip(pos_lists, rec_lists)]
        return [UserProjection(str(u), p, r, xy[:len(p)], xy[len(p):])
                for u, p, r, xy in zip(user_ids, pos_lists, rec_lists, maps)]


def pick_users(user_ids: np.ndarray, chosen: Sequence[str], sample: int, seed: int,
               eligible: np.ndarray | None = None) -> np.ndarray:
    """Rows of ``user_ids`` to draw: the ``chosen`` ids (each must exist), else ``sample`` rows drawn
    with ``seed`` among ``eligible`` (bool mask; default all), in ascending row order."""
    user_ids = np.asarray(user_ids, dtype=object).astype(str)
    if chosen:
        index = {u: i for i, u in enumerate(user_ids)}
        unknown = [u for u in chosen if u not in index]
        if unknown:
            raise ValueError(f"VisDiv figure_users {unknown} are not evaluated users "
                             f"(e.g. {', '.join(user_ids[:5])})")
        return np.array([index[u] for u in chosen], dtype=np.int64)
    pool = np.flatnonzero(eligible) if eligible is not None else np.arange(user_ids.shape[0])
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(pool, size=min(sample, pool.shape[0]), replace=False))


# --------------------------------------------------------------------------------------------
# The registered metric
# --------------------------------------------------------------------------------------------
@register_metric("VisDiv")
class VisDiv(Metric):
    """VisDiv@k (CNNs-in-VRSs study): mean over users of the 2-D distance between the centroid of
    her training positives and that of her top-k, in a t-SNE map of item visual features.

    Looks up ``ctx.features[feature_key(loader, kind)]`` (item-aligned, e.g.
    ``"VisualAttributes/visual_features"``). Column: ``VisDiv[<projection>]``, or
    ``VisDiv[<projection>,<loader>]`` when a non-default loader is chosen (or ``label``).
    """

    per_user_stats = True
    needs_features = True

    def __init__(self, **options: Any) -> None:
        self.options = parse_options(options)
        self.options.tsne()  # mode/implementation conflicts fail at construction, not mid-run
        self._engines: dict[int, tuple[weakref.ref, VisDivEngine]] = {}

    @property
    def feature_key(self) -> str:
        return feature_key(self.options.loader, self.options.kind)

    def feature_requests(self) -> list[tuple[str, str]]:
        """The (side-information name, kind) pairs this entry reads (see :func:`evaluation_features`)."""
        return [(self.options.loader, self.options.kind)]

    def column(self, k: int) -> str:
        if self.options.label:
            return self.options.label
        extra = "" if self.options.loader == DEFAULT_LOADER else f",{self.options.loader}"
        return f"{self.name}[{self.options.projection}{extra}]"

    def applies_to(self, k: int) -> bool:
        """Whether VisDiv is computed at cutoff ``k`` (option ``cutoffs``)."""
        return self.options.cutoffs is None or k in self.options.cutoffs

    def engine(self, ctx: RankingContext) -> VisDivEngine:
        """The engine for the context's features (built once per feature array)."""
        features = _lookup(ctx.features, self.feature_key)
        cached = self._engines.get(id(features))
        if cached is not None and cached[0]() is features:
            return cached[1]
        train_items = ctx.data.train_item_mask if ctx.data is not None else None
        if ctx.data is not None:
            item_ids = ctx.data.item_ids
        else:
            item_ids = np.arange(features.shape[0]).astype(str).astype(object)
        engine = VisDivEngine(self.options, features, item_ids, train_items)
        try:
            self._engines = {id(features): (weakref.ref(features), engine)}
        except TypeError:
            pass
        return engine

    def compute(self, ctx: RankingContext, k: int) -> MetricValue:
        if not self.applies_to(k):
            return MetricValue(float("nan"), None)
        if ctx.data is not None:
            positives = ctx.cached(("VisDiv", "positives"), lambda: positives_in_training_order(ctx.data, ctx.users))
        elif ctx.train is not None:
            positives = ctx.train[ctx.users]
        else:
            raise ValueError("VisDiv needs the train interactions in the ranking context (RankingContext.data)")
        result = self.engine(ctx).compute(positives, ctx.items, k)
        return MetricValue(result.value, result.per_user)


def evaluation_features(metrics: Sequence[Metric], store: Any) -> dict[str, np.ndarray]:
    """The ``features=`` mapping for ``evaluate()``: every array the feature-reading metrics ask
    for, from a store with ``get(loader_name, kind)`` (the FeatureStore of the evaluated split)."""
    wanted = {pair for m in metrics if m.needs_features for pair in getattr(m, "feature_requests", list)()}
    return {feature_key(loader, kind): store.get(loader, kind) for loader, kind in sorted(wanted)}


def _lookup(features: Mapping[str, np.ndarray] | None, key: str) -> np.ndarray:
    if not features:
        raise ValueError(f"VisDiv needs item features '{key}' in the evaluation context; declare the loader "
                         "in data_config.side_information and pass its arrays to evaluate(features=...)")
    if key not in features:
        loader = key.split("/")[0]
        raise ValueError(f"VisDiv: no features '{key}' in the evaluation context (available: "
                         f"{', '.join(sorted(features)) or 'none'}); set the VisDiv option loader to a "
                         f"data_config.side_information name (now '{loader}') and kind to a kind it provides")
    return np.asarray(features[key])

