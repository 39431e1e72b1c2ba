# expect: [assignment] Incompatible types in assignment (expression has type "Optimizer", variable has type "int")
from app import factories
from app.launch import compose_config

cfg = compose_config()
steps: int = factories.optimizer(cfg, factories.model(cfg).parameters())
