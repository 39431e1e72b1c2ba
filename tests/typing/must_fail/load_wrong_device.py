# expect: [arg-type] Argument "device" to "load" has incompatible type "int"
from app.models import load

load("best.pt", device=0)
