# expect: [arg-type] Argument "weights" to "AlexNetConfig" has incompatible type "ResNet18Weights"; expected "AlexNetWeights | None"
from app.configs import AlexNetConfig, ResNet18Weights

AlexNetConfig(weights=ResNet18Weights.DEFAULT)
