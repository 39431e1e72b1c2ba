# expect: [dict-item] Dict entry 0 has incompatible type "str": "float"; expected "str": "str"
from app.configs import search_preset

Lr = search_preset("lr", {"optimizer.lr": 0.1})
