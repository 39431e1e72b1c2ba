"""A head of one's own: layer configs, the first width following the extractor."""

from app.configs import (
    FROM_EXTRACTOR,
    TO_CLASSES,
    DropoutConfig,
    HeadConfig,
    LayerConfig,
    LinearConfig,
    ReLUConfig,
)

layers: list[LayerConfig] = [
    LinearConfig(in_features=FROM_EXTRACTOR, out_features=64),
    ReLUConfig(inplace=True),
    DropoutConfig(p=0.2),
    LinearConfig(in_features=64, out_features=TO_CLASSES, bias=False),
]
head = HeadConfig(_args_=layers)
print(len(head._args_))
