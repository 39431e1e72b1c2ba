# expect: [arg-type] Argument "every_n_steps" to "TensorBoardConfig" has incompatible type "None"; expected "int"
from app.configs import TensorBoardConfig

TensorBoardConfig(every_n_steps=None)
