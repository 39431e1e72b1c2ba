# expect: [call-arg] Unexpected keyword argument "out_features" for "AlexNetConfig"
from app.configs import AlexNetConfig

AlexNetConfig(out_features=100)
