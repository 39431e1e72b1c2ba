# expect: [attr-defined] "type[ResNet18Weights]" has no attribute "IMAGENET1K_V3"
from app.configs import ResNet18Config, ResNet18Weights

ResNet18Config(weights=ResNet18Weights.IMAGENET1K_V3)
