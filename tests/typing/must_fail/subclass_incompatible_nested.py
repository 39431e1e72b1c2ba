# expect: [assignment] Incompatible types in assignment (expression has type "int", base class "DatasetConfig" defined the type as "ImageConfig")
from dataclasses import dataclass

from app.configs import DatasetConfig


@dataclass(kw_only=True)
class MyData(DatasetConfig):
    image: int = 64
