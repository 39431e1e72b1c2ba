# expect: [arg-type] Argument "seed" to "TrainerConfig" has incompatible type "None"; expected "int"
from app.configs import TrainerConfig

TrainerConfig(seed=None)
