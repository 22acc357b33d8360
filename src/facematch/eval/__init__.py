"""Evaluation: the one verification job (``facematch-eval``: :mod:`facematch.eval.job`), the LFW protocol and
metrics, identification, the nearest-template metric, plots and the job's outputs.

Import-light on purpose: submodules load torch / sklearn / matplotlib only when used.
"""
