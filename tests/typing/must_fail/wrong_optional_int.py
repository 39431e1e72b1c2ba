# expect: [arg-type] Argument "top_k" to "PredictConfig" has incompatible type "str"; expected "int | None"
from app.configs import PredictConfig

PredictConfig(checkpoint="best.pt", input="photos", top_k="3")
