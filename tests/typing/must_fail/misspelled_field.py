# expect: [call-arg] Unexpected keyword argument "clases" for "DigitsConfig"
from app.configs import DigitsConfig

DigitsConfig(clases=3)
