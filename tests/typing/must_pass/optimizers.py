"""Optimizer configs: betas a pair, each optimizer's own fields."""

from app.configs import AdamConfig, AdamWConfig, OptimizerConfig, SGDConfig

optimizers: list[OptimizerConfig] = [
    AdamConfig(betas=(0.9, 0.999), eps=1e-7, amsgrad=True),
    AdamWConfig(lr=3e-4, weight_decay=0.05),
    SGDConfig(lr=0.1, momentum=0.9, nesterov=True),
]
first = optimizers[0]
if isinstance(first, AdamConfig):
    beta1, beta2 = first.betas
    print(beta1 + beta2)
