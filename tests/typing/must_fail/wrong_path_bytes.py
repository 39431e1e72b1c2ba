# expect: [arg-type] Argument "checkpoint" to "ResNet18Config" has incompatible type "bytes"
from app.configs import ResNet18Config

ResNet18Config(checkpoint=b"weights.pt")
