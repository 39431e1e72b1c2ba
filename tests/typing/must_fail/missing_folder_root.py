# expect: [call-arg] Missing named argument "root" for "ImageFolderConfig"
from app.configs import ImageFolderConfig

ImageFolderConfig(classes=3)
