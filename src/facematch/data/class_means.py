"""Each training class's mean embedding under a net: the starting class weights of a margin-softmax loss
("imprinting", :mod:`facematch.losses.margin`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from facematch.data.datasets import ImageDataset


@torch.no_grad()
def class_means(dm, net: nn.Module, chunk: int = 512) -> torch.Tensor:
    """(C, D): the mean of the L2-normalised embeddings of each training class's images (every cached view
    on the fast path; the evaluation crop else), normalised. ``dm``: a set-up FaceDataModule whose training
    set holds labelled images; ``net``: images or cached activations -> embeddings."""
    ds: ImageDataset = dm.train_set
    targets = torch.as_tensor(ds.targets)
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    chunks = []
    if dm.feature_store is not None:
        for i in range(0, len(ds.paths), chunk):
            acts = dm.feature_store.stack(ds.paths[i: i + chunk]).float()  # (n, K, D)
            emb = net(acts.flatten(0, 1).to(device)).view(acts.shape[0], acts.shape[1], -1)
            chunks.append(F.normalize(emb, dim=2).mean(1).cpu())
    else:
        plain = ImageDataset(ds.paths, ds.targets, dm.source, dm._transform(False))
        for x, _ in DataLoader(plain, batch_size=chunk, num_workers=dm.num_workers):
            chunks.append(net(x.to(device)).cpu())
    net.train(was_training)
    emb = F.normalize(torch.cat(chunks).float(), dim=1)
    sums = torch.zeros(int(targets.max()) + 1, emb.shape[1]).index_add_(0, targets, emb)
    return F.normalize(sums, dim=1)
