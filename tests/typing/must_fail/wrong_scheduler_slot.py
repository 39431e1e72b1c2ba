# expect: [assignment] Incompatible types in assignment (expression has type "AdamConfig", variable has type "SchedulerConfig | None")
from app.configs import AdamConfig
from app.launch import load_config

cfg = load_config()
cfg.scheduler = AdamConfig()
