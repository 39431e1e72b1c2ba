# expect: [attr-defined] "Splits" has no attribute "test"
from app import factories
from app.launch import compose_config

print(len(factories.splits(compose_config()).test))
