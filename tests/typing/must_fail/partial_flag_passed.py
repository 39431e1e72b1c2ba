# expect: [call-arg] Unexpected keyword argument "_partial_" for "AdamConfig"
from app.configs import AdamConfig

AdamConfig(_partial_=False)
