# expect: [attr-defined] "TrainerConfig" has no attribute "epoch"
from app.launch import load_config

cfg = load_config()
cfg.trainer.epoch = 2
