"""Evaluation layer: Elliot's metrics on full (or sampled) rankings, and significance tests.

``ranking`` (masked batched top-k, full-rank positions), ``metrics/`` (one module per family,
registered in ``METRICS``), ``evaluator`` (``evaluate``), ``sampled`` (sampled-negatives protocol),
``tasks/`` (what a model entry is evaluated and selected on: ``ranking``, ``sampled``, ``multilabel``)
and ``significance`` (paired t-test / Wilcoxon tables).
"""
