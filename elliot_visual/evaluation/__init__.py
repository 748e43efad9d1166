"""Evaluation layer: Elliot's metrics on full (or sampled) rankings, and significance tests.

``ranking`` (masked batched top-k, full-rank positions), ``metrics/`` (one module per family,
registered in ``METRICS``), ``evaluator`` (``evaluate``, ``parse_validation_metric``),
``sampled`` (sampled-negatives protocol) and ``significance`` (paired t-test / Wilcoxon tables).
"""
