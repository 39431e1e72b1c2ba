# expect: [attr-defined] "Trained" has no attribute "modell"
from app.models import load

load("best.pt").modell.eval()
