# expect: [arg-type] Argument "weights" to "AlexNetConfig" has incompatible type "str"; expected "AlexNetWeights | None"
from app.configs import AlexNetConfig

AlexNetConfig(weights="IMAGENET1K_V1")
