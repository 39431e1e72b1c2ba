# expect: [arg-type] Argument 1 to "train" has incompatible type "DigitsConfig"; expected "MainConfig | DictConfig"
from app.configs import DigitsConfig
from app.train import train

train(DigitsConfig(), output_dir="run")
