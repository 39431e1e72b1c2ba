# expect: [arg-type] Argument "normalize" to "ImageConfig" has incompatible type "str"; expected "Normalize"
from app.configs import ImageConfig

ImageConfig(normalize="weights")
