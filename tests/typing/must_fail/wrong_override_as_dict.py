# expect: [arg-type] Argument "trainer" to "partial_override" has incompatible type "dict[str, int]"; expected "TrainerConfig | None"
from app.configs import partial_override

Short = partial_override("Short", trainer={"epochs": 3})
