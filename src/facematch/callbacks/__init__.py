"""Training callbacks (Lightning and Hydra): the learning curves, TensorBoard's dashboard (HParams, images,
projector), the closed-set nearest-template accuracy and the lines a run and a sweep end with. Built from
``conf/callbacks/`` (and ``conf/hydra/default.yaml``); they read the evaluation metrics and plots below them."""
