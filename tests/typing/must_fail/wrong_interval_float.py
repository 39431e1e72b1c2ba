# expect: [arg-type] Argument "epochs" to "CosineConfig" has incompatible type "float"; expected "int"
from app.configs import CosineConfig

CosineConfig(epochs=1.5)
