# expect: [arg-type] Argument 2 to "add_experiment" has incompatible type "TrainerConfig"; expected "type"
from app.configs import TrainerConfig, add_experiment

add_experiment("quick", TrainerConfig(epochs=1))
