"""The Elliot adapter (external/models) and the launcher, checked against a fake minimal Elliot.

Elliot cannot be installed here, so the tests install stand-in ``elliot`` modules that mimic the
API the adapter relies on (``BaseRecommenderModel.__init__`` reading params and meta,
``autoset_params``, ``init_charger``, ``RecMixin.evaluate`` recording results and saving weights,
``AbstractLoader``, ``run_experiment``), then load ``external/models/__init__.py`` the way Elliot
does: as a package named ``external`` from its file path.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from elliot_visual.storage import write_npy

EXTERNAL = Path(__file__).resolve().parents[2] / "external" / "models" / "__init__.py"


def _load_external() -> ModuleType:
    """Execute the external file exactly as Elliot's run.py does."""
    for name in [m for m in sys.modules if m == "external" or m.startswith("external.")]:
        del sys.modules[name]
    spec = importlib.util.spec_from_file_location("external", EXTERNAL)
    module = importlib.util.module_from_spec(spec)
    sys.modules["external"] = module
    spec.loader.exec_module(module)
    return module


class FakeBase:
    """What the adapter reads from Elliot's BaseRecommenderModel (sisinflab/elliot, 0.3.1)."""

    def __init__(self, data, config, params, *args, **kwargs):
        self._data, self._config, self._params = data, config, params
        self._negative_sampling = False
        self._restore = getattr(params.meta, "restore", False)
        self._validation_metric, self._validation_k = "Recall", 3
        self._save_weights = getattr(params.meta, "save_weights", False)
        self._validation_rate = getattr(params.meta, "validation_rate", 1)
        self._epochs = int(getattr(params, "epochs", 2))
        self._seed = getattr(params, "seed", 42)
        self._batch_size = getattr(params, "batch_size", -1)
        self._losses, self._results, self._params_list = [], [], []

    def autoset_params(self):
        for attr, key, _short, default, read, _print in self._params_list:
            value = getattr(self._params, key, default)
            setattr(self, attr, read(value) if read else value)


def fake_init_charger(init):
    def charged(self, data, config, params, *args, **kwargs):
        FakeBase.__init__(self, data, config, params)
        init(self, data, config, params, *args, **kwargs)
        self._params.name = self.name
        self._saving_filepath = str(Path(config.path_output_rec_weight) / self.name / f"best-weights-{self.name}")
    return charged


class FakeRecMixin:
    """Elliot's evaluate(): get recommendations, score Recall@3 on the test dict, keep the best weights."""

    def evaluate(self, it=None, loss=0):
        val, test = self.get_recommendations(3)
        truth = self._data.test_dict
        recall = np.mean([len({i for i, _ in test[u]} & set(truth[u])) / len(truth[u]) for u in truth])
        self._results.append({3: {"val_results": {"Recall": recall}, "test_results": {"Recall": recall}}})
        self._losses.append(loss)
        self.recorded_iterations = getattr(self, "recorded_iterations", []) + [it]
        best = int(np.argmax([r[3]["val_results"]["Recall"] for r in self._results]))
        if self._save_weights and best == len(self._results) - 1:
            self._model.save_weights(self._saving_filepath)


class FakeAbstractLoader:
    pass


@pytest.fixture()
def fake_elliot(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Install stand-in ``elliot`` modules; the calls to ``run_experiment`` are recorded."""
    calls: list[str] = []
    modules = {
        "elliot": {}, "elliot.recommender": {}, "elliot.dataset": {}, "elliot.dataset.modular_loaders": {},
        "elliot.recommender.base_recommender_model": {"BaseRecommenderModel": FakeBase,
                                                      "init_charger": fake_init_charger},
        "elliot.recommender.recommender_utils_mixin": {"RecMixin": FakeRecMixin},
        "elliot.dataset.modular_loaders.abstract_loader": {"AbstractLoader": FakeAbstractLoader},
        "elliot.dataset.modular_loaders.loaders": {"VisualAttribute": "Elliot's own"},
        "elliot.run": {"run_experiment": calls.append},
    }
    for name, attributes in modules.items():
        module = ModuleType(name)
        module.__dict__.update(attributes)
        module.__path__ = []  # every fake is a package, so submodule imports resolve
        monkeypatch.setitem(sys.modules, name, module)
    yield SimpleNamespace(calls=calls, loaders=sys.modules["elliot.dataset.modular_loaders.loaders"])
    for name in [m for m in sys.modules if m == "external" or m.startswith("external.")]:
        del sys.modules[name]


USERS = ["ann", "bob", "cid", "dee"]
ITEMS = ["B01", "B02", "B03", "B04", "B05", "B06"]
TRAIN = {"ann": ["B01", "B02"], "bob": ["B02", "B03"], "cid": ["B04"], "dee": ["B05", "B01"]}
TEST = {"ann": ["B03"], "bob": ["B01"], "cid": ["B06"], "dee": ["B02"]}


def _elliot_data(tmp_path: Path) -> SimpleNamespace:
    """An Elliot DataSet look-alike whose items have Elliot-layout features (``<item>.npy``)."""
    rng = np.random.default_rng(0)
    for item in ITEMS:
        write_npy(tmp_path / "feats" / f"{item}.npy", rng.random(8).astype(np.float32))
    rows = [USERS.index(u) for u, items in TRAIN.items() for _ in items]
    cols = [ITEMS.index(i) for items in TRAIN.values() for i in items]
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(USERS), len(ITEMS)))
    visual = SimpleNamespace(visual_feature_folder_path=str(tmp_path / "feats"), visual_pca_feature_folder_path=None,
                             visual_feat_map_feature_folder_path=None, images_folder_path=None)
    return SimpleNamespace(num_users=len(USERS), num_items=len(ITEMS), transactions=int(train.nnz),
                           private_users=dict(enumerate(USERS)), private_items=dict(enumerate(ITEMS)),
                           sp_i_train=train, sp_i_train_ratings=train, allunrated_mask=train.toarray() == 0,
                           test_dict=TEST, side_information=SimpleNamespace(VisualAttributes=visual),
                           config=SimpleNamespace(dataset="toy"))


def _params(**values) -> SimpleNamespace:
    meta = SimpleNamespace(**values.pop("meta", {}))
    return SimpleNamespace(meta=meta, **values)


def test_without_elliot_the_module_imports_and_exposes_every_model_contract() -> None:
    assert "elliot" not in sys.modules
    external = _load_external()
    assert external.ELLIOT_AVAILABLE is False
    for name in ("VBPR", "DeepStyle", "ACF", "VNPR", "DVBPR", "VisRank", "BPRMF"):
        assert getattr(external, name).model_name == name
    rows = external.VBPR.params_list()
    assert rows[0][:4] == ("_batch_eval", "batch_eval", "be", 512)
    assert [r[2] for r in rows] == ["be", "factors", "factors_d", "lr", "l_w", "l_b", "l_e", "load",
                                    "negatives_from", "exclude_validation"]
    with pytest.raises(external.ElliotNotInstalledError, match="not on PyPI: clone https://github.com/sisinflab/elliot"):
        external.VBPR(None, SimpleNamespace(), _params())


def test_adapter_builds_its_params_list_and_a_distinct_report_name(fake_elliot, tmp_path: Path) -> None:
    external = _load_external()
    assert issubclass(external.VBPR, (FakeRecMixin, FakeBase)) and external.ELLIOT_AVAILABLE
    config = SimpleNamespace(gpu=-1, path_output_rec_weight=str(tmp_path / "weights"))
    params = _params(epochs=2, batch_size=4, factors=3, factors_d=2, lr="1e-2", meta={"validation_rate": 1})
    model = external.VBPR(_elliot_data(tmp_path), config, params)
    assert ("_factors", "factors", "factors", 100, None) == model._params_list[1][:5]
    assert model._factors == 3 and model._hyper.lr == 0.01   # Elliot's YAML string cast by Params
    assert model.name == "EV-VBPR_seed=42_e=2_bs=4_be=512_factors=3_factors_d=2_lr=0$01_l_w=2$5e-05_l_b=0_" \
                         "l_e=2$5e-05_load=VisualAttributes"
    assert params.name == model.name


def test_adapter_trains_through_elliots_evaluate_and_returns_val_and_test_recs_by_public_id(
        fake_elliot, tmp_path: Path) -> None:
    external = _load_external()
    config = SimpleNamespace(gpu=-1, path_output_rec_weight=str(tmp_path / "weights"))
    params = _params(epochs=4, batch_size=2, factors=3, factors_d=2, lr=0.05,
                     meta={"validation_rate": 2, "save_weights": True})
    model = external.VBPR(_elliot_data(tmp_path), config, params)
    model.train()
    assert model.recorded_iterations == [1, 3]          # validation every 2 epochs, Elliot's 0-based it
    val, test = model.get_recommendations(3)
    assert val == test and set(test) == set(USERS)
    for user, recs in test.items():
        items = [item for item, _ in recs]
        assert len(items) == 3 and not set(items) & set(TRAIN[user])   # train items masked
        assert set(items) <= set(ITEMS)
        scores = [score for _, score in recs]
        assert scores == sorted(scores, reverse=True)
    assert Path(model._saving_filepath).is_file()
    restored = external.VBPR(_elliot_data(tmp_path), config, _params(
        epochs=4, batch_size=2, factors=3, factors_d=2, lr=0.05, meta={"validation_rate": 2, "restore": True}))
    restored.train()   # restore: load the saved best weights, evaluate once
    best = int(np.argmax([r[3]["val_results"]["Recall"] for r in model._results]))
    assert restored._results[-1] == model._results[best]


def test_vnpr_adapter_accepts_the_forks_prob_keep_dropout(fake_elliot, tmp_path: Path) -> None:
    external = _load_external()
    data = _elliot_data(tmp_path)
    config = SimpleNamespace(gpu=-1, path_output_rec_weight=str(tmp_path / "weights"))
    model = external.VNPR(data, config, _params(epochs=1, batch_size=2, prob_keep_dropout=0.6, meta={}))
    assert model._hyper.dropout == 0.4 and "_drop=0$4_" in model.name


def test_launcher_registers_our_loaders_into_elliot_and_runs_elliot(fake_elliot, tmp_path: Path) -> None:
    from elliot_visual.elliot_launcher import run_with_elliot

    run_with_elliot(tmp_path / "config.yml")
    assert fake_elliot.calls == [str(tmp_path / "config.yml")]
    loaders = fake_elliot.loaders
    assert loaders.VisualAttribute == "Elliot's own"        # Elliot's built-in loader is untouched
    assert issubclass(loaders.FeatureVectors, FakeAbstractLoader)
    for item in ("B01", "B02"):
        write_npy(tmp_path / "feats" / f"{item}.npy", np.ones(3, np.float32))
    ns = SimpleNamespace(dataloader="FeatureVectors", path=str(tmp_path / "feats"))
    loader = loaders.FeatureVectors({"ann", "bob"}, {"B01", "B02", "B09"}, ns, logger=None)
    assert loader.get_mapped() == ({"ann", "bob"}, {"B01", "B02"})   # B09 has no features
    namespace = loader.create_namespace()
    assert namespace.__name__ == "VisualAttributes" and namespace.object is loader
    assert set(namespace.elliot_visual_sources) == {"visual_features", "visual_pca_features"}


def test_launcher_without_elliot_says_how_to_install_it_or_what_to_run(tmp_path: Path) -> None:
    from elliot_visual.elliot_launcher import ElliotNotInstalledError, run_with_elliot

    with pytest.raises(ElliotNotInstalledError, match=r"not on PyPI: clone .*sisinflab/elliot.*start_experiments.py --config"):
        run_with_elliot(tmp_path / "config.yml")


def test_adapter_hands_elliot_the_epochs_real_loss(fake_elliot, tmp_path: Path) -> None:
    external = _load_external()
    config = SimpleNamespace(gpu=-1, path_output_rec_weight=str(tmp_path / "weights"))
    model = external.VBPR(_elliot_data(tmp_path), config, _params(epochs=3, batch_size=2, factors=3, factors_d=2,
                                                                  lr=0.01, meta={"validation_rate": 1}))
    model.train()
    losses = model._losses
    assert len(losses) == 3 and all(np.isfinite(losses)) and all(v > 0 for v in losses)
    # Elliot's models pass loss / (it + 1) of the epoch's summed batch losses (per-pair BPR starts near
    # log 2, and a batch sums its pairs): the order of batches x pairs x log 2, not NaN
    batches = -(-model._interactions.transactions // 2)
    assert 0.5 * batches * np.log(2) < losses[0] < 2 * 2 * batches * np.log(2)
    assert losses[1] != losses[0]


def test_launcher_merges_entries_sharing_a_name_as_the_native_engine_does(fake_elliot, tmp_path: Path) -> None:
    from elliot_visual.elliot_launcher import run_with_elliot

    run_with_elliot(tmp_path / "config.yml")
    loaders = fake_elliot.loaders
    for item in ("B01", "B02"):
        write_npy(tmp_path / "vec" / f"{item}.npy", np.ones(3, np.float32))
        write_npy(tmp_path / "maps" / f"{item}.npy", np.ones((2, 2, 3), np.float32))
    vectors = loaders.FeatureVectors({"ann"}, {"B01", "B02"}, SimpleNamespace(
        dataloader="FeatureVectors", name="resnet", path=str(tmp_path / "vec")), logger=None)
    maps = loaders.FeatureMaps({"ann"}, {"B01", "B02"}, SimpleNamespace(
        dataloader="FeatureMaps", name="resnet", path=str(tmp_path / "maps")), logger=None)
    kept = maps.create_namespace()   # Elliot keeps the last namespace of a name: it holds both entries' kinds
    assert kept.__name__ == vectors.create_namespace().__name__ == "resnet"
    assert {"visual_features", "visual_feat_map_features"} <= set(kept.elliot_visual_sources)
    from elliot_visual.features.sources import FeatureError
    with pytest.raises(FeatureError, match="namespace 'resnet' already has visual_features"):
        loaders.FeatureVectors({"ann"}, {"B01"}, SimpleNamespace(dataloader="FeatureVectors", name="resnet",
                                                                path=str(tmp_path / "vec")), logger=None)
