# expect: [operator] Unsupported operand types for + ("str" and "int")
from app.checks import ConfigError
from app.launch import compose_config

try:
    compose_config(["dataset.classes=0"])
except ConfigError as error:
    print(error.problems[0].key + 1)
