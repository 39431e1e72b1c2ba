# expect: [arg-type] Argument "size" to "ImageConfig" has incompatible type "str"; expected "int"
from app.configs import DigitsConfig, ImageConfig

DigitsConfig(image=ImageConfig(size="abc"))
