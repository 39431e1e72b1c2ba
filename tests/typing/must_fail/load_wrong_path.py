# expect: [arg-type] Argument 1 to "load" has incompatible type "int"
from app.models import load

load(3)
