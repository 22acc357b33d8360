"""The one place where third-party warnings that facematch cannot fix are filtered: the entry points apply
them through :func:`facematch.errors.run_or_exit`, the test suite through its conftest (``pytest_configure``).
Every entry names the library and why the cause is not ours; everything else stays visible."""

from __future__ import annotations

import builtins
import warnings

#: (message regex, category name): a builtin warning category, so pytest's ``filterwarnings`` takes it too.
THIRD_PARTY_WARNINGS = (
    # Lightning's utilities/_pytree.py tests ``isinstance(treespec, LeafSpec)``, which torch's pytree deprecates
    # (a FutureWarning raised through typing_extensions); the call is inside Lightning's CombinedLoader.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", "FutureWarning"),
    # Lightning's fit loop flags every module in eval mode at the start of training. A frozen backbone keeps its
    # BatchNorm and Dropout layers in eval mode on purpose (models.base.Backbone.train): frozen statistics.
    (r"Found \d+ module\(s\) in eval mode at the start of training", "UserWarning"),
)


def filter_third_party_warnings() -> None:
    for message, category in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=getattr(builtins, category))
