# expect: [call-overload] No overload variant of "add_option" matches argument types "str", "str", "AdamConfig"
from app.configs import AdamConfig, add_option

add_option("dataset", "mine", AdamConfig())
