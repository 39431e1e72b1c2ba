# expect: [call-overload] No overload variant of "add_option" matches argument types "str", "str", "DigitsConfig"
from app.configs import DigitsConfig, add_option

add_option("datasets", "mine", DigitsConfig(classes=3))
