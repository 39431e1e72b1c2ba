# expect: [call-arg] Unexpected keyword argument "epoch" for "TrainerConfig"
from app.configs import TrainerConfig, experiment

Mine = experiment("Mine", trainer=TrainerConfig(epoch=3))
