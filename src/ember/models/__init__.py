"""Model zoo: reference architectures with PyTorch / torchvision / Hugging Face parameter names.

Each family lives in its own module and lists its public names in ``__all__``; the factories
(``resnet18``, ``vgg16_bn``, ``mobilenet_v2``, ``gpt``, ``bert``…) follow torchvision's naming.
"""
from .mlp import *  # noqa: F403
from .lenet import *  # noqa: F403
from .resnet import *  # noqa: F403
from .vgg import *  # noqa: F403
from .mobilenet import *  # noqa: F403
from .lstm_lm import *  # noqa: F403
from .gpt import *  # noqa: F403
from .bert import *  # noqa: F403
from .pretrained import *  # noqa: F403
from .sentence import *  # noqa: F403

# ``ember.models.bert`` is the factory function (torchvision style), which hides the submodule of the same
# name; the names documented as ``ember.models.bert.X`` are attached to it so both spellings work.
bert.BertConfig = BertConfig  # noqa: F405
bert.BertModel = BertModel  # noqa: F405
bert.SentenceEncoder = SentenceEncoder  # noqa: F405
