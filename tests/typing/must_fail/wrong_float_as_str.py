# expect: [arg-type] Argument "p" to "DropoutConfig" has incompatible type "str"; expected "float"
from app.configs import DropoutConfig

DropoutConfig(p="0.5")
