# expect: [call-arg] Unexpected keyword argument "_target_" for "DigitsConfig"
from app.configs import DigitsConfig

DigitsConfig(_target_="os.system")
