# expect: [assignment] Incompatible types in assignment (expression has type "list[str]", variable has type "int")
from app.models import load

classes: int = load("best.pt").classes
