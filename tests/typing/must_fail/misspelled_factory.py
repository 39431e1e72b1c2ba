# expect: [attr-defined] Module has no attribute "modle"
from app import factories
from app.launch import compose_config

factories.modle(compose_config())
