# expect: [assignment] Incompatible types in assignment (expression has type "ResNet18Config", variable has type "DatasetConfig")
from app.configs import ResNet18Config
from app.launch import load_config

cfg = load_config()
cfg.dataset = ResNet18Config()
