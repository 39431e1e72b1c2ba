# expect: [arg-type] Argument "optimizer" to "partial_override" has incompatible type "CosineConfig"; expected "OptimizerConfig | None"
from app.configs import CosineConfig, experiment

Mine = experiment("Mine", optimizer=CosineConfig())
