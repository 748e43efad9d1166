"""VNPR: Visual Neural Personalized Ranking (Niu et al., WSDM 2018), Elliot's two-tower form."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from pydantic import model_validator
from torch import Tensor, nn

from elliot_visual.data.samplers import Triples
from elliot_visual.models.base import IntTuple, PairwiseParams, Recommender, hp, register_model
from elliot_visual.models.pairwise import Real, SeededDropout, bpr_loss, glorot, glorot_, l2

# Scoring: at most this many (item, user, hidden unit) values at once, and this many users' first-layer
# kernels side by side in one product (kept small enough to stay in cache).
SCORE_BUDGET = 1 << 20
KERNEL_COLUMNS = 1024


@register_model("VNPR")
class VNPR(Recommender):
    """x_ui = MLP([p_u ⊙ q_i ; v_u ⊙ f_i])  with f_i the PCA-reduced visual features (eq. 6-8 of
    the paper: MF and visual interactions concatenated into an MLP), trained with BPR.

    Elliot's form: two towers. For a triple (u, i, j) the positive goes through tower 1 with item
    embedding ``I_MF_1`` and the negative through tower 2 with ``I_MF_2``, x_uij = h1 − h2; a
    prediction averages both towers for the same item. Each tower layer is Dropout(``dropout``)
    then Dense(units, relu), the last 1-unit layer included, as in Elliot. Embeddings ``U_MF``,
    ``I_MF_1``, ``I_MF_2`` (``mf_factors``) and ``U_V`` (PCA width) Glorot-uniform, dense kernels
    Glorot and biases zero (Keras defaults). Loss = Σ softplus(−x_uij) + l_w/2 (‖U_MF_u‖² +
    ‖I_MF_1_i‖² + ‖I_MF_2_j‖²) + l_v/2 (‖U_V_u‖² + every MLP weight and bias); ``l_v`` defaults to
    ``l_w``.

    ``dropout`` is the Keras *rate* (fraction dropped). The Elliot-Reproducible-VRSs configs write
    ``prob_keep_dropout`` instead, which the fork silently ignored (its grid then ran identical
    configurations); here it is an accepted alias meaning ``dropout = 1 − prob_keep_dropout``.
    ``towers: 1`` instead scores both items of a triple with the same network and item embedding
    (the paper's pairwise form, x_uij = f(u, i) − f(u, j)). It is not Elliot's behaviour, so
    the default stays 2; a 1-tower model's name ends in ``_towers=1``. Why it exists: with two
    towers, tower 1 only ever sees positives and tower 2 only negatives, so neither learns to
    tell them apart (tower 2's relu output typically dies at 0 and the prediction is tower 1's
    one-class score). On the planted data of ``tests/models`` the Elliot form trails BPR-MF on
    Recall@20 while the shared form beats it (numbers in ``tests/models/test_visual_bars.py``).
    Deviation from the paper otherwise: Adam, as in Elliot.

    YAML::

        VNPR:
          epochs: 20
          batch_size: 256
          mf_factors: 64
          mlp_hidden_size: (128, 64, 1)
          dropout: 0.4
    """

    class Params(PairwiseParams):
        ALIASES: ClassVar[tuple[str, ...]] = ("prob_keep_dropout",)

        batch_eval: int = hp(512, "be", ge=1)
        lr: Real = hp(0.001, "lr", gt=0)
        l_w: Real = hp(0.001, "l_w", ge=0)
        l_v: Real | None = hp(None, "l_v", ge=0, description="None means the value of l_w")
        mf_factors: int = hp(10, "mffactors", ge=1)
        mlp_hidden_size: IntTuple = hp((32, 1), "mlpunits")
        dropout: Real = hp(0.2, "drop", ge=0, lt=1)
        towers: Literal[1, 2] = hp(2, "towers", in_name=False, description="2: Elliot's towers; 1: shared")

        @model_validator(mode="before")
        @classmethod
        def _aliases_and_defaults(cls, values: Any) -> Any:
            if not isinstance(values, dict):
                return values
            values = dict(values)
            if "prob_keep_dropout" in values:
                keep = float(values.pop("prob_keep_dropout"))
                rate = round(1.0 - keep, 10)
                if values.get("dropout") is not None and float(values["dropout"]) != rate:
                    raise ValueError(f"prob_keep_dropout={keep} (dropout {rate}) contradicts dropout={values['dropout']}; "
                                     "give only one of them")
                values["dropout"] = rate
            if values.get("l_v") is None:
                values["l_v"] = values.get("l_w", cls.model_fields["l_w"].default)
            return values

    needs = ("visual_pca_features",)
    loader_in_name = True
    sampler = "bpr"

    def __init__(self, params: Params, n_users: int, n_items: int,
                 features: Mapping[str, Tensor] | None = None) -> None:
        super().__init__(params, n_users, n_items, features)
        feats = features["visual_pca_features"]
        self.register_buffer("features", feats.float(), persistent=False)
        k, width = params.mf_factors, feats.shape[1]
        self.U_MF = glorot(n_users, k)
        self.I_MF_1 = glorot(n_items, k)
        if params.towers == 2:
            self.I_MF_2 = glorot(n_items, k)
        self.U_V = glorot(n_users, width)
        self.tower_1 = _tower(k + width, params.mlp_hidden_size)
        if params.towers == 2:
            self.tower_2 = _tower(k + width, params.mlp_hidden_size)
        self._dropout = SeededDropout(params.seed)

    @classmethod
    def report_name(cls, params: "VNPR.Params", loader: str | None = None) -> str:
        name = super().report_name(params, loader)
        return name + "_towers=1" if params.towers == 1 else name

    def _second(self) -> tuple[nn.ModuleList, nn.Parameter]:
        """The tower and item embedding that score negatives (the first ones when shared)."""
        if self.params.towers == 1:
            return self.tower_1, self.I_MF_1
        return self.tower_2, self.I_MF_2

    def _towers(self) -> list[tuple[nn.ModuleList, nn.Parameter]]:
        """Every distinct (tower, item embedding) pair; a prediction averages their outputs."""
        first = (self.tower_1, self.I_MF_1)
        return [first] if self.params.towers == 1 else [first, self._second()]

    def _run(self, tower: nn.ModuleList, x: Tensor, dropout: bool) -> Tensor:
        for layer in tower:
            if dropout:
                x = self._dropout(x, float(self.params.dropout))
            x = torch.relu(layer(x))
        return x.squeeze(-1)

    def loss(self, batch: Triples) -> Tensor:
        p = self.params
        u, i, j = batch.users, batch.pos, batch.neg
        um, vu = self.rows(self.U_MF, u), self.rows(self.U_V, u)
        tower_2, items_2 = self._second()
        qi, qj = self.rows(self.I_MF_1, i), self.rows(items_2, j)
        h1 = self._run(self.tower_1, torch.cat([um * qi, vu * self.features[i]], 1), self.training)
        h2 = self._run(tower_2, torch.cat([um * qj, vu * self.features[j]], 1), self.training)
        mlp = [w for tower in {id(t): t for t in (self.tower_1, tower_2)}.values() for w in tower.parameters()]
        reg = p.l_w * l2(um, qi, qj) + p.l_v * l2(vu, *mlp)
        return bpr_loss(h1 - h2) + reg

    def score(self, users: Tensor) -> Tensor:
        """(len(users), n_items): the mean of the towers' outputs, dropout off, in blocks.

        The first dense layer is linear in its input, so W [p_u ⊙ q_i ; v_u ⊙ f_i] is
        [q_i ; f_i] (W ⊙ [p_u ; v_u])ᵀ: for a block of items and a group of users, ONE matrix
        product of the items' (block, k + P) rows with the group's scaled kernels side by side
        ((k + P), group x h), without materialising the (users x items x width) input. The hidden
        layers then run on (block x group, h) rows, the shape a plain batched MLP forward has.
        Groups stay small (``KERNEL_COLUMNS``) so the kernels stay in cache: with all 256 users
        of an evaluation batch side by side the product ran ~1.7x slower.
        """
        um, vu = self.U_MF[users], self.U_V[users]
        outputs = []
        for tower, items in self._towers():
            first, rest = tower[0], tower[1:]
            hidden = first.out_features
            group = max(1, KERNEL_COLUMNS // hidden)
            block = max(1, SCORE_BUDGET // (group * hidden))
            bias = first.bias.repeat(group)
            rows_of_users = []
            for lo in range(0, len(users), group):
                members = torch.cat([um[lo:lo + group], vu[lo:lo + group]], 1)           # (g, k + P)
                g = members.shape[0]
                kernels = (members[:, None, :] * first.weight[None]).reshape(g * hidden, -1).T  # (k + P, g h)
                columns = []
                for start in range(0, self.n_items, block):
                    rows = torch.cat([items[start:start + block], self.features[start:start + block]], 1)
                    x = torch.addmm(bias[:g * hidden], rows, kernels).relu_().view(-1, hidden)  # (block g, h)
                    columns.append(self._run(rest, x, dropout=False).view(rows.shape[0], g).T)
                rows_of_users.append(torch.cat(columns, 1) if columns else um.new_zeros(g, 0))
            outputs.append(torch.cat(rows_of_users) if rows_of_users else um.new_zeros(0, self.n_items))
        return sum(outputs) / len(outputs)


def _tower(width: int, hidden: tuple[int, ...]) -> nn.ModuleList:
    """Dense layers of one tower, Keras-initialised (Glorot kernels, zero biases)."""
    layers = nn.ModuleList()
    for units in hidden:
        layer = nn.Linear(width, units)
        glorot_(layer.weight.data.T)
        nn.init.zeros_(layer.bias)
        layers.append(layer)
        width = units
    return layers
