# expect: [call-arg] Unexpected keyword argument "model"
from app.configs import AlexNetConfig, experiment

Mine = experiment("Mine", model=AlexNetConfig())
