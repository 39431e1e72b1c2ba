# expect: [list-item] List item 0 has incompatible type "dict[str, str]"; expected "LayerConfig"
from app.configs import HeadConfig

HeadConfig(_args_=[{"_target_": "torch.nn.ReLU"}])
