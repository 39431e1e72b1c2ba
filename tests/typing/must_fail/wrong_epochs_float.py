# expect: [arg-type] Argument "epochs" to "TrainerConfig" has incompatible type "float"; expected "int"
from app.configs import TrainerConfig

TrainerConfig(epochs=2.5)
