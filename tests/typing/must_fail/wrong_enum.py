# expect: [arg-type] Argument "device" to "TrainerConfig" has incompatible type "str"; expected "Device"
from app.configs import TrainerConfig

TrainerConfig(device="gpu")
