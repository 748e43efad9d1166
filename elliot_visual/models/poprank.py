"""PopRank: the popularity ranking, under the name the ImgRec and DVBPR papers' tables give it."""
from __future__ import annotations

from elliot_visual.models.base import register_model
from elliot_visual.models.most_pop import MostPop


@register_model("PopRank")
class PopRank(MostPop):
    """Score of item i = number of distinct train users of i (the tables' "PopRank" row).

    The same ranking as :class:`MostPop` (Elliot's name); it exists so that a config written from
    the ImgRec paper's Tables 2-4 reads as the paper, and its report rows carry the paper's name.
    """
