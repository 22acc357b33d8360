"""facematch's Hydra sweeper for Optuna (``hparams_search=optuna``); the class is in :mod:`.sweeper`.

``hydra_plugins`` is a namespace package (no ``__init__.py``) shared with the other installed Hydra plugins.
"""
