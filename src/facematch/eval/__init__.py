"""Evaluation: the one verification job, the LFW protocol and metrics, identification, plots, ``facematch-eval``.

Import-light on purpose: submodules load torch / sklearn / matplotlib only when used. ``main`` (the
Hydra entry point in :mod:`facematch.eval.run`) is resolved lazily, so an entry point written as
``facematch.eval:main`` keeps working.
"""


def __getattr__(name: str):
    if name == "main":
        from facematch.eval.run import main

        return main
    raise AttributeError(f"module 'facematch.eval' has no attribute {name!r}")
