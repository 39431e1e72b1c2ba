# expect: [arg-type] Argument "betas" to "AdamWConfig" has incompatible type "tuple[str, float]"; expected "tuple[float, float]"
from app.configs import AdamWConfig

AdamWConfig(betas=("0.9", 0.999))
