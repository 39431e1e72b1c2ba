# expect: [arg-type] Argument 1 to "model" has incompatible type "AlexNetConfig"; expected "MainConfig | DictConfig"
from app import factories
from app.configs import AlexNetConfig

factories.model(AlexNetConfig())
