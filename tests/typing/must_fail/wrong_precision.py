# expect: [arg-type] Argument "precision" to "TrainerConfig" has incompatible type "str"; expected "Precision"
from app.configs import TrainerConfig

TrainerConfig(precision="bf16")
