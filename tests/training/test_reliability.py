"""The loop under stress: divergence, exact resume with dropout, stale and tampered checkpoints, logs."""
from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor, nn

from elliot_visual.config.schema import EarlyStopping
from elliot_visual.data.interactions import Interactions
from elliot_visual.models.base import Recommender, TrainParams, build_model, hp
from elliot_visual.models.bprmf import BPRMF
from elliot_visual.models.pairwise import SeededDropout
from elliot_visual.training.loop import (CheckpointError, NonFiniteLossError, TrainingConfig, TrainingDivergedError,
                                         train)

ROOT = Path(__file__).resolve().parents[2]


def _blocks(n_users: int = 20, drop_last: bool = False) -> Interactions:
    rng = np.random.default_rng(0)
    train_rows, test_rows = [], []
    for u in range(n_users):
        chosen = rng.choice(np.arange(u % 2, 20, 2), size=6, replace=False)
        train_rows += [(f"u{u}", f"i{i}", 1.0) for i in chosen[:5]]
        test_rows += [(f"u{u}", f"i{i}", 1.0) for i in chosen[5:]]
    if drop_last:
        train_rows = train_rows[:-1]
    train_frame = pd.DataFrame(train_rows, columns=["user", "item", "rating"])
    test = pd.DataFrame(test_rows, columns=["user", "item", "rating"])
    return Interactions.from_frames("blocks", train_frame, test, validation=test)


class DropoutMF(Recommender):
    """BPR-MF with two sources of randomness besides the sampler: a seeded dropout and torch's global one."""

    family = "DropoutMF"

    class Params(TrainParams):
        factors: int = hp(4)
        lr: float = hp(0.05)

    def __init__(self, params: TrainParams, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        self.users = nn.Parameter(torch.randn(n_users, params.factors) * 0.1)
        self.items = nn.Parameter(torch.randn(n_items, params.factors) * 0.1)
        self.dropout = SeededDropout(params.seed)

    def loss(self, batch) -> Tensor:  # noqa: ANN001
        u = self.dropout(self.users[batch.users], 0.3)
        u = torch.nn.functional.dropout(u, 0.2, training=True)
        x = (u * (self.items[batch.pos] - self.items[batch.neg])).sum(-1)
        return torch.nn.functional.softplus(-x).sum()

    def score(self, users: Tensor) -> Tensor:
        return self.users[users] @ self.items.T


def test_a_finite_but_exploding_loss_is_a_typed_divergence_error() -> None:
    data = _blocks()
    model = build_model(BPRMF, BPRMF.Params(epochs=5, batch_size=16, lr=1e6, factors=4), data.n_users, data.n_items)
    with pytest.raises(TrainingDivergedError) as caught:
        train(model, data, TrainingConfig(progress=False, description="BPRMF_lr=1e6"))
    error = caught.value
    assert not isinstance(error, NonFiniteLossError)        # finite: the NaN check alone would miss it
    assert np.isfinite(error.loss) and error.loss > 1e4
    assert "BPRMF_lr=1e6: training diverged at epoch" in str(error) and "exploding" in error.reason


def test_a_sane_learning_rate_does_not_trip_the_divergence_check() -> None:
    data = _blocks()
    model = build_model(BPRMF, BPRMF.Params(epochs=15, batch_size=16, lr=0.1, factors=4), data.n_users, data.n_items)
    assert len(train(model, data, TrainingConfig(progress=False)).history) == 15


def _resume_after_crash(data: Interactions, params: TrainParams, folder: Path, crash_at: int) -> Recommender:
    class Interrupt(Exception):
        pass

    calls = {"n": 0, "crashed": False}

    def crash(m: Recommender) -> float:
        calls["n"] += 1
        if calls["n"] == crash_at and not calls["crashed"]:
            calls["crashed"] = True
            raise Interrupt
        return float(calls["n"] % 3)

    first = build_model(DropoutMF, params, data.n_users, data.n_items)
    with pytest.raises(Interrupt):
        train(first, data, TrainingConfig(progress=False, checkpoint_dir=folder), crash)
    # the process is gone: draw from the global generators as other code would have
    torch.rand(100)
    np.random.rand(100)
    calls["n"] = crash_at - 1
    resumed = build_model(DropoutMF, params, data.n_users, data.n_items)
    train(resumed, data, TrainingConfig(progress=False, checkpoint_dir=folder, restore=True), crash)
    return resumed


def test_resume_with_dropout_is_exact(tmp_path: Path) -> None:
    data = _blocks()
    params = DropoutMF.Params(epochs=6, batch_size=8, seed=5)
    torch.manual_seed(11)
    full = build_model(DropoutMF, params, data.n_users, data.n_items)
    counter = {"n": 0}

    def validate(m: Recommender) -> float:
        counter["n"] += 1
        return float(counter["n"] % 3)

    train(full, data, TrainingConfig(progress=False, checkpoint_dir=tmp_path / "full"), validate)
    torch.manual_seed(11)
    resumed = _resume_after_crash(data, params, tmp_path / "cut", crash_at=4)
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    last_full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    last_cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["model"]
    for key in last_full:
        assert torch.equal(last_full[key], last_cut[key]), key


def test_a_checkpoint_of_other_data_is_refused_not_restored(tmp_path: Path) -> None:
    params = BPRMF.Params(epochs=2, batch_size=16, factors=4)
    data = _blocks()
    train(build_model(BPRMF, params, data.n_users, data.n_items), data,
          TrainingConfig(progress=False, checkpoint_dir=tmp_path), lambda m: 0.5)
    other = _blocks(drop_last=True)
    with pytest.raises(CheckpointError, match="other data, split, hyperparameters"):
        train(build_model(BPRMF, params, other.n_users, other.n_items), other,
              TrainingConfig(progress=False, checkpoint_dir=tmp_path, restore=True), lambda m: 0.5)
    changed = BPRMF.Params(epochs=2, batch_size=16, factors=4, lr=0.5)
    with pytest.raises(CheckpointError):
        train(build_model(BPRMF, changed, data.n_users, data.n_items), data,
              TrainingConfig(progress=False, checkpoint_dir=tmp_path, restore=True), lambda m: 0.5)
    longer = BPRMF.Params(epochs=3, batch_size=16, factors=4)   # more epochs: the same run, extended
    result = train(build_model(BPRMF, longer, data.n_users, data.n_items), data,
                   TrainingConfig(progress=False, checkpoint_dir=tmp_path, restore=True), lambda m: 0.5)
    assert result.restored and [r.epoch for r in result.history] == [1, 2, 3]


class _Payload:
    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp/elliot_visual_tampered_checkpoint_ran")


def test_a_tampered_checkpoint_cannot_run_code(tmp_path: Path) -> None:
    MARKER.unlink(missing_ok=True)
    params = BPRMF.Params(epochs=2, batch_size=16, factors=4)
    data = _blocks()
    (tmp_path / "last.pt").write_bytes(pickle.dumps({"model": _Payload()}))
    with pytest.raises(CheckpointError, match="last.pt: refused to load"):
        train(build_model(BPRMF, params, data.n_users, data.n_items), data,
              TrainingConfig(progress=False, checkpoint_dir=tmp_path, restore=True), lambda m: 0.5)
    assert not MARKER.exists()


def test_verbose_logs_every_epoch_and_early_stopping_verbose_each_check(caplog: pytest.LogCaptureFixture) -> None:
    data = _blocks()
    model = build_model(BPRMF, BPRMF.Params(epochs=4, batch_size=16, factors=4), data.n_users, data.n_items)
    values = iter([0.5, 0.4, 0.3, 0.2])
    config = TrainingConfig(progress=False, verbose=True, description="M", selection="nDCG@10",
                            early_stopping=EarlyStopping(monitor="nDCG@10", patience=2, verbose=True))
    with caplog.at_level(logging.INFO, logger="elliot_visual.training.loop"):
        train(model, data, config, lambda m: next(values))
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" loss")[0] for line in lines if " epoch " in line and "early" not in line] == [
        "M: epoch 1/4", "M: epoch 2/4", "M: epoch 3/4"]
    checks = [line for line in lines if "early stopping watches" in line]
    assert checks[-1] == "M: early stopping watches nDCG@10 = [0.5, 0.4, 0.3] (patience 2): stop"
    assert len(checks) == 3
    quiet = build_model(BPRMF, BPRMF.Params(epochs=2, batch_size=16, factors=4), data.n_users, data.n_items)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="elliot_visual.training.loop"):
        train(quiet, data, TrainingConfig(progress=False, description="Q"), lambda m: 0.1)
    assert not [r for r in caplog.records if "epoch 1/2" in r.getMessage()]


SCRIPT = """
import logging, sys, torch
sys.path.insert(0, {root!r})
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from tests.training.test_reliability import _blocks
from elliot_visual.models.base import build_model
from elliot_visual.models.bprmf import BPRMF
from elliot_visual.training.loop import TrainingConfig, train
torch.set_num_threads(1)
data = _blocks()
model = build_model(BPRMF, BPRMF.Params(epochs=3, batch_size=4, factors=4), data.n_users, data.n_items)
train(model, data, TrainingConfig(progress=True, description="bar"))
"""


def _stderr_of_training(tty: bool, env: dict[str, str]) -> bytes:
    """Run a short training in a fresh process whose stderr is a pseudo-terminal or a pipe."""
    import pty

    script = SCRIPT.format(root=str(ROOT))
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    if not tty:
        return subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True,
                              timeout=120, check=True).stderr
    leader, follower = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    process = subprocess.Popen([sys.executable, "-c", script], env=environment, stderr=follower,
                               stdout=subprocess.DEVNULL)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=120) == 0
    os.close(leader)
    return b"".join(chunks)


def test_progress_draws_a_bar_on_a_terminal_and_plain_lines_elsewhere() -> None:
    on_terminal = _stderr_of_training(tty=True, env={})
    assert b"\r" in on_terminal and b"epoch" in on_terminal
    piped = _stderr_of_training(tty=False, env={})
    assert b"\r" not in piped
    assert b"bar: 3/3 epoch (100%), elapsed" in piped   # one closing line, not a frame per refresh


def test_tqdm_disable_is_honoured_on_a_terminal() -> None:
    disabled = _stderr_of_training(tty=True, env={"TQDM_DISABLE": "1"})
    assert b"it/s" not in disabled and b"epoch/s" not in disabled and b"s/epoch" not in disabled
    assert b"|" not in disabled


class SetAttention(DropoutMF):
    """Like ACF: every batch looks items up many times over (each user's whole item set)."""

    family = "SetAttention"

    def loss(self, batch) -> Tensor:  # noqa: ANN001
        items = torch.cat([batch.pos, batch.neg]).repeat(40)           # heavily repeated indices
        weights = torch.linspace(0.5, 1.5, len(items))
        x = (self.items[items] * weights[:, None]).sum(0) @ self.users[batch.users].T
        return torch.nn.functional.softplus(-x).mean()


def test_training_on_several_cpu_threads_is_bit_identical_under_a_seed() -> None:
    """Repeated indices in a lookup made its backward thread-order dependent on the CPU: ACF's
    results differed in the third decimal between two runs of one seed."""
    data = _blocks(n_users=40)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for _ in range(2):
            model = build_model(SetAttention, SetAttention.Params(epochs=3, batch_size=256, seed=4),
                                data.n_users, data.n_items)
            train(model, data, TrainingConfig(progress=False))
            runs.append(model.state_dict())
    finally:
        torch.set_num_threads(threads)
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key
    assert not torch.are_deterministic_algorithms_enabled()   # the switch is the loop's, not left on
