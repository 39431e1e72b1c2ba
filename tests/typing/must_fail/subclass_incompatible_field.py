# expect: [assignment] Incompatible types in assignment (expression has type "str", base class "DigitsConfig" defined the type as "int")
from dataclasses import dataclass

from app.configs import DigitsConfig


@dataclass(kw_only=True)
class MyDigits(DigitsConfig):
    classes: str = "ten"
