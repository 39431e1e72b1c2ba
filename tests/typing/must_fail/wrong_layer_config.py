# expect: [list-item] List item 1 has incompatible type "DigitsConfig"; expected "LayerConfig"
from app.configs import DigitsConfig, HeadConfig, LinearConfig

HeadConfig(_args_=[LinearConfig(in_features=9216, out_features=10), DigitsConfig()])
