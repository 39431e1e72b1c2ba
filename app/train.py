"""The training job: ``python -m app.train [overrides]`` or ``app-train [overrides]``.

Reads top to bottom: config -> data -> model -> optimizer -> epochs -> artefacts. Torch is
imported inside ``train`` so that ``--help``, ``--cfg``, tab completion and a refused override
never pay for it.
"""

import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from app import launch
from app.checks import ConfigError, check_config
from app.configs import CONFIG_NAME, VERSION_BASE

log = logging.getLogger("app.train")


def train(cfg: DictConfig, output_dir: Path) -> float:
    """Check ``cfg`` as the launch check would, then ``run`` it: for callers from Python.

    Raises ``app.checks.ConfigError`` before anything is created when ``cfg`` breaks a rule.
    """
    problems = check_config(cfg)
    if problems:
        raise ConfigError(problems)
    return run(cfg, output_dir)


def run(cfg: DictConfig, output_dir: Path) -> float:
    """Fine-tune the model ``cfg`` describes; write artefacts under ``output_dir``.

    ``cfg`` must be checked already. Returns the best validation accuracy (what a sweeper
    optimises).
    """
    import torch
    from hydra.utils import instantiate

    from app import data, engine
    from app.models import ImageClassifier

    t = cfg.trainer
    output_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(t.seed)
    device = engine.resolve_device(t.device.value)
    step = engine.Step(device, t.precision.value, t.channels_last)
    config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # type: ignore[assignment]

    # Data
    splits: data.Splits = instantiate(cfg.dataset)
    pin = device.type == "cuda"  # page-locked batches copy to the GPU asynchronously
    train_loader = data.loader(splits.train, t.batch_size, True, t.seed, t.num_workers, pin)
    val_loader = data.loader(splits.val, t.batch_size, False, t.seed, t.num_workers, pin)

    # Model: the extractor and the head are each built from their own config node
    model = ImageClassifier(
        instantiate(cfg.feature_extractor), instantiate(cfg.classifier), t.freeze_extractor
    ).to(device)
    model.to(memory_format=step.memory_format)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = instantiate(cfg.optimizer)(trainable)
    scheduler = instantiate(cfg.scheduler)(optimizer) if cfg.scheduler is not None else None
    log.info(
        "%d train / %d val images, %d classes, %s px x %d ch | %.2fM trainable parameters | %s",
        len(splits.train), len(splits.val), splits.classes, cfg.dataset.image.size,
        cfg.dataset.image.channels, sum(p.numel() for p in trainable) / 1e6, device,
    )

    # Epochs: train, validate, log one line, keep the last and the best checkpoint
    metrics = engine.MetricsLog(output_dir / "metrics.csv")
    best: dict[str, Any] = {}
    last: dict[str, Any] = {}
    started = time.perf_counter()
    for epoch in range(1, t.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        train_pass = engine.run_pass(model, train_loader, step, optimizer, f"epoch {epoch} train")
        val_pass = engine.run_pass(model, val_loader, step, None, f"epoch {epoch} val")
        if scheduler is not None:
            scheduler.step()
        last = engine.epoch_row(epoch, lr, train_pass, val_pass)
        metrics.append(last)
        log.info(
            "epoch %d/%d  train loss %.4f acc %.3f | val loss %.4f acc %.3f | lr %.3g | %.1fs, %.0f img/s",
            epoch, t.epochs, last["train_loss"], last["train_acc"], last["val_loss"],
            last["val_acc"], lr, last["seconds"], last["images_per_s"],
        )
        engine.save_checkpoint(output_dir / "checkpoints" / "last.pt", model, optimizer, epoch, config)
        if not best or last["val_acc"] > best["val_acc"]:
            best = last
            engine.save_checkpoint(output_dir / "checkpoints" / "best.pt", model, optimizer, epoch, config)

    engine.save_json(
        output_dir / "summary.json",
        {"final": last, "best": best, "seconds": round(time.perf_counter() - started, 3)},
    )
    log.info("best val acc %.3f at epoch %d; artefacts in %s", best["val_acc"], best["epoch"], output_dir)
    return float(best["val_acc"])


@hydra.main(config_path=None, config_name=CONFIG_NAME, version_base=VERSION_BASE)
def hydra_main(cfg: DictConfig) -> float:
    """The job Hydra runs, once per run or sweep point, each checked by ``main`` already."""
    runtime = HydraConfig.get().runtime
    launch.absolute_paths(cfg, runtime.cwd)  # the run dir may be the working dir now
    return run(cfg, Path(runtime.output_dir))


def main() -> None:
    """``python -m app.train`` and ``app-train``: check every run or sweep point, then launch."""
    command = launch.parse_command(sys.argv[1:])
    with launch.shared_config_store():
        points, problems = launch.check_command(command)
        if problems:
            launch.report(problems, points)
            sys.exit(1)
        hydra_main()


if __name__ == "__main__":
    main()
