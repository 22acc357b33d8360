"""The one place where third-party warnings that facematch cannot fix are filtered (called by the entry
points through :func:`facematch.errors.run_or_exit`, and by the test suite's conftest). Every entry names the
library and why its cause is not ours; everything else stays visible."""

from __future__ import annotations

import warnings


def filter_third_party_warnings() -> None:
    # Lightning's utilities/_pytree.py tests ``isinstance(treespec, LeafSpec)``, which torch's pytree deprecates
    # (FutureWarning from typing_extensions); the call is inside Lightning's CombinedLoader.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)
    # Lightning's fit loop flags every module in eval mode at the start of training. A frozen backbone keeps its
    # BatchNorm and Dropout layers in eval mode on purpose (models.backbones.Backbone.train): frozen statistics.
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training",
                            category=UserWarning)
