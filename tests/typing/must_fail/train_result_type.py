# expect: [assignment] Incompatible types in assignment (expression has type "float", variable has type "str")
from app.launch import load_config
from app.train import train

accuracy: str = train(load_config(), "run")
