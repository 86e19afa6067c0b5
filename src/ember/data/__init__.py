"""ember.data: datasets, samplers and the DataLoader (the API of ``torch.utils.data``), vision
transforms (:mod:`ember.data.transforms`) and local dataset readers (:mod:`ember.data.datasets`)."""
from __future__ import annotations

from . import datasets, transforms
from ._worker import *  # noqa: F403
from .collate import *  # noqa: F403
from .dataloader import *  # noqa: F403
from .dataset import *  # noqa: F403
from .errors import *  # noqa: F403
from .sampler import *  # noqa: F403
from .text import *  # noqa: F403
