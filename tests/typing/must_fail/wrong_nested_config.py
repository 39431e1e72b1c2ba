# expect: [arg-type] Argument "image" to "DigitsConfig" has incompatible type "int"; expected "ImageConfig"
from app.configs import DigitsConfig

DigitsConfig(image=64)
