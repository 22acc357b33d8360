"""Miners (pytorch-metric-learning's miner shape, beside its ``pytorch_metric_learning.miners`` that the other
``conf/miner/`` options name): the triplets of a batch a loss trains on."""
