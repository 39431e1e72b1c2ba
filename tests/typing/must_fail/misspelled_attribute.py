# expect: [attr-defined] "TrainerConfig" has no attribute "epoch"
from app.configs import TrainerConfig

epochs: int = TrainerConfig().epoch
