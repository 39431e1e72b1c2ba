# expect: [arg-type] Argument "batch_size" to "TrainerConfig" has incompatible type "str"; expected "int"
from app.configs import TrainerConfig

TrainerConfig(batch_size="32")
