"""The workloads, by name. Each module's ``run(quick)`` returns harness rows; ``quick`` uses tiny sizes
and one repeat (to check that the workload runs, not to time it)."""
from __future__ import annotations

from . import (
    anomaly_overhead,
    bert_embed,
    cnn_train,
    dataloader,
    elementwise_large,
    fused_elementwise,
    gpt_train,
    grad_overhead,
    layernorm_bwd,
    matmul,
    mlp_train,
    op_overhead,
    reduce_large,
)

WORKLOADS = {
    "op_overhead": op_overhead.run,
    "elementwise_large": elementwise_large.run,
    "fused_elementwise": fused_elementwise.run,
    "reduce_large": reduce_large.run,
    "matmul": matmul.run,
    "grad_overhead": grad_overhead.run,
    "anomaly_overhead": anomaly_overhead.run,
    "dataloader": dataloader.run,
    "mlp_train": mlp_train.run,
    "cnn_train": cnn_train.run,
    "gpt_train": gpt_train.run,
    "layernorm_bwd": layernorm_bwd.run,
    "bert_embed": bert_embed.run,
}
