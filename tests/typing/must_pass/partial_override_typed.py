"""A partial override sets only what each config object was given."""

from app.configs import DatasetConfig, ImageConfig, TrainerConfig, given, partial_override

Short = partial_override(
    "Short",
    dataset=DatasetConfig(image=ImageConfig(size=64), train_size=32),
    trainer=TrainerConfig(epochs=1),
    scheduler=None,
)
assert given(TrainerConfig(epochs=1)) == {"epochs": 1}
print(Short)
