# expect: [arg-type] Argument "augment" to "ImageFolderConfig" has incompatible type "bool"; expected "Augment"
from app.configs import ImageFolderConfig

ImageFolderConfig(root="data", classes=2, augment=True)
