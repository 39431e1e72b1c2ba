# expect: [attr-defined] "OptimizerConfig" has no attribute "lrr"
from app.launch import load_config

print(load_config().optimizer.lrr)
