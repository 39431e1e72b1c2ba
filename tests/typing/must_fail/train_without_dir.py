# expect: [call-arg] Missing positional argument "output_dir" in call to "train"
from app.launch import load_config
from app.train import train

train(load_config())
