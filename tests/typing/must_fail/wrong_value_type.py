# expect: [arg-type] Argument "classes" to "DigitsConfig" has incompatible type "float"; expected "int"
from app.configs import DigitsConfig

DigitsConfig(classes=0.5)
