# expect: [call-arg] Too many positional arguments for "ImageConfig"
from app.configs import ImageConfig

ImageConfig(64)
