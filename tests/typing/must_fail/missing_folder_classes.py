# expect: [call-arg] Missing named argument "classes" for "ImageFolderConfig"
from app.configs import ImageFolderConfig

ImageFolderConfig(root="data")
