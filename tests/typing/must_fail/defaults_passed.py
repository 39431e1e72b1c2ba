# expect: [call-arg] Unexpected keyword argument "defaults" for "MainConfig"
from app.configs import AdamConfig, AlexNetConfig, DigitsConfig, LoggerConfig, MainConfig, SmallHeadConfig, TrainerConfig

MainConfig(
    dataset=DigitsConfig(),
    feature_extractor=AlexNetConfig(),
    classifier=SmallHeadConfig(),
    optimizer=AdamConfig(),
    scheduler=None,
    trainer=TrainerConfig(),
    logger=LoggerConfig(),
    defaults=["_self_"],
)