# expect: [call-arg] Missing named argument "out_features" for "LinearConfig"
from app.configs import LinearConfig

LinearConfig(in_features=9216)
