# expect: [arg-type] Argument "split" to "EvaluateConfig" has incompatible type "str"; expected "Split"
from app.configs import DigitsConfig, EvaluateConfig

EvaluateConfig(checkpoint="best.pt", dataset=DigitsConfig(), split="test")
