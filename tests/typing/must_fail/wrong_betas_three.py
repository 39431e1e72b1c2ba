# expect: [arg-type] Argument "betas" to "AdamConfig" has incompatible type "tuple[float, float, float]"; expected "tuple[float, float]"
from app.configs import AdamConfig

AdamConfig(betas=(0.9, 0.99, 0.999))
