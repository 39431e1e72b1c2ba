# expect: [arg-type] Argument "optimizer" to "MainConfig" has incompatible type "AlexNetConfig"; expected "OptimizerConfig"
from app.configs import AlexNetConfig, MainConfig

MainConfig(optimizer=AlexNetConfig())  # type: ignore[call-arg]
