# expect: [arg-type] Argument "root" to "ImageFolderConfig" has incompatible type "int"
from app.configs import ImageFolderConfig

ImageFolderConfig(root=3, classes=2)
