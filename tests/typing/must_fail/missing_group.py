# expect: [call-arg] Missing named argument "trainer" for "MainConfig"
from app.configs import AdamConfig, AlexNetConfig, DigitsConfig, LoggerConfig, MainConfig, SmallHeadConfig

MainConfig(
    dataset=DigitsConfig(),
    feature_extractor=AlexNetConfig(),
    classifier=SmallHeadConfig(),
    optimizer=AdamConfig(),
    scheduler=None,
    logger=LoggerConfig(),
)
