# expect: [assignment] Incompatible types in assignment (expression has type "str", variable has type "int")
from app.launch import load_config

cfg = load_config()
cfg.trainer.epochs = "4"
