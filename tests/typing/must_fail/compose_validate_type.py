# expect: [arg-type] Argument "validate" to "compose_config" has incompatible type "str"; expected "bool"
from app.launch import compose_config

compose_config(["classifier=large"], validate="yes")
