# expect: [call-arg] Missing named argument "checkpoint" for "PredictConfig"
from app.configs import PredictConfig

PredictConfig(input="photos")
