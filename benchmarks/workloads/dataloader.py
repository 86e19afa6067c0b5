"""Input pipeline throughput: a 4-worker DataLoader over 10,000 in-memory 32x32x3 uint8 images, batch 128,
with ToTensor, RandomCrop(32, padding=4), RandomHorizontalFlip and Normalize per image, in images/s.

PyTorch's DataLoader runs the same pipeline written with torch ops (no torchvision) in its dataset.
One timed call is one shuffled epoch, worker start-up included (``persistent_workers=False``, the
default); the second row keeps the workers alive across epochs.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as tF
import torch.utils.data as tdata

from ember.data import DataLoader, Dataset
from ember.data import transforms as T

from ..harness import Row, Target, compare

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class EmberImages(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels
        self.transform = T.Compose([T.ToTensor(), T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                                    T.Normalize(MEAN, STD)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), int(self.labels[i])


class TorchImages(tdata.Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div(255)
        x = tF.pad(x, (4, 4, 4, 4))
        top, left = torch.randint(0, 9, (2,)).tolist()
        x = x[:, top:top + 32, left:left + 32]
        if torch.rand(1).item() < 0.5:
            x = x.flip(-1)
        return (x - self.mean) / self.std, int(self.labels[i])


def _epoch(loader) -> None:
    for _batch in loader:
        pass


def run(quick: bool = False) -> list[Row]:
    n, workers = (512, 2) if quick else (10_000, 4)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    rows = []
    for persistent in (False, True):
        loaders = {"ember": DataLoader(EmberImages(images, labels), batch_size=128, shuffle=True,
                                       num_workers=workers, persistent_workers=persistent),
                   "torch": tdata.DataLoader(TorchImages(images, labels), batch_size=128, shuffle=True,
                                             num_workers=workers, persistent_workers=persistent)}
        times = compare({k: (lambda ld=ld: _epoch(ld)) for k, ld in loaders.items()},
                        warmup=1, repeat=1 if quick else 5)
        rate = {k: n / t for k, t in times.items()}
        case = f"{n} x 32x32x3, batch 128, {workers} workers" + (", persistent" if persistent else "")
        rows.append(Row("dataloader", case, "images/s", rate.pop("ember"), rate,
                        Target("torch", 0.8, higher_is_better=True)))
    return rows
