# expect: "TrainerConfig" has no attribute "epoch"
from app.configs import MainConfig, TrainerConfig

epochs: int = TrainerConfig().epoch
MainConfig()
