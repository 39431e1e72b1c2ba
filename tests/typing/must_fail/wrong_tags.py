# expect: [assignment] Incompatible types in assignment (expression has type "str", variable has type "list[str]")
from app.launch import load_config

cfg = load_config()
cfg.tags = "a,b"
