"""Utilities for layers (``ember.nn.utils``): variable-length sequences for recurrent layers."""
from . import rnn
from .rnn import (PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence,
                  unpack_sequence, unpad_sequence)
from . import clip_grad, convert_parameters
from .clip_grad import NonFiniteNormError, clip_grad_norm_, clip_grad_value_
from .convert_parameters import parameters_to_vector, vector_to_parameters
