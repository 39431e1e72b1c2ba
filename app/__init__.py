"""Fine-tune a classification head on a torchvision CNN, configured in typed Python with Hydra."""
