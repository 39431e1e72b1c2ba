# expect: [arg-type] Argument "nesterov" to "SGDConfig" has incompatible type "str"; expected "bool"
from app.configs import SGDConfig

SGDConfig(nesterov="yes")
