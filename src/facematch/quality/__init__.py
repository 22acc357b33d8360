"""Face quality: how much a face can be trusted to be compared (issue 33).

Two scores per face, both from the backbone's plain-view feature before normalisation (with every stage
frozen, the trunk's output: what :mod:`facematch.data.features` caches for the head-only rows):

- ``norm``: the feature's L2 norm (unsupervised; MagFace's argument that a network's feature magnitude
  grows with how recognisable the face is);
- ``learned``: a small head (:mod:`.head`) regressing CR-FIQA's certainty ratio (how much closer a face sits
  to its own class centre than to the nearest other one), trained on degraded crops of people outside the
  scored fold.

Layers: :mod:`.head`, :mod:`.store` and :mod:`.discard` import nothing above ``models`` (the practitioner
tools and the model read them); :mod:`.pairs`, :mod:`.experiment`, :mod:`.plots` and :mod:`.faces` build on
``data`` and ``eval`` (tests/unit/test_layers.py).
"""
