"""The training job: ``python -m app.train [overrides]`` or ``app-train [overrides]``.

``fit`` reads top to bottom: config -> data -> model -> optimizer -> epochs -> artefacts. Torch
is imported inside it, so that ``--help``, ``--cfg``, tab completion and a refused override never
pay for it.
"""

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from app import folders, launch
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
    """Fine-tune the model ``cfg`` describes in ``output_dir``, which no other live run may be
    writing in, and no earlier run's artefacts may be left in unless ``trainer.overwrite``.

    ``cfg`` must be checked already. Returns the best validation accuracy (what a sweeper
    optimises).
    """
    with folders.run_lock(str(output_dir)):
        left = folders.run_artefacts(str(output_dir))
        if left and not cfg.trainer.overwrite:
            raise FileExistsError(
                f"{output_dir} holds an earlier run ({', '.join(left)}): choose another run dir, "
                "or set trainer.overwrite=true to replace it"
            )
        if left:
            log.warning("replacing the earlier run in %s (trainer.overwrite=true)", output_dir)
            folders.remove_run_artefacts(str(output_dir))
        return fit(cfg, output_dir)


def fit(cfg: DictConfig, output_dir: Path) -> float:
    """The job, top to bottom: config -> data -> model -> optimizer -> epochs -> artefacts."""
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
    metrics = engine.MetricsLog(output_dir / folders.METRICS)
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
        engine.save_checkpoint(output_dir / folders.CHECKPOINTS / "last.pt", model, optimizer, epoch, config)
        if not best or last["val_acc"] > best["val_acc"]:
            best = last
            engine.save_checkpoint(output_dir / folders.CHECKPOINTS / "best.pt", model, optimizer, epoch, config)

    engine.save_json(
        output_dir / folders.SUMMARY,
        {"final": last, "best": best, "seconds": round(time.perf_counter() - started, 3)},
    )
    log.info("best val acc %.3f at epoch %d; artefacts in %s", best["val_acc"], best["epoch"], output_dir)
    return float(best["val_acc"])


def failure(error: BaseException) -> str:
    """What went wrong inside a job, as one paragraph: what failed and what to do."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, folders.RunDirBusy):
        hint = "wait for that run, or choose another hydra.run.dir"
    elif isinstance(error, FileExistsError):
        hint = "choose another hydra.run.dir, or add trainer.overwrite=true"
    elif "URLError" in text or "urlopen error" in text:
        hint = "a download failed (offline?): give a local state dict with feature_extractor.checkpoint=PATH"
    elif isinstance(error, MemoryError) or "out of memory" in text.lower() or "not enough memory" in text:
        hint = "lower trainer.batch_size or dataset.image.size, or pick a smaller feature_extractor"
    else:
        hint = "set HYDRA_FULL_ERROR=1 to see where it failed"
    return f"The run failed: {type(error).__name__}: {text}\n  hint: {hint}"


@hydra.main(config_path=None, config_name=CONFIG_NAME, version_base=VERSION_BASE)
def hydra_main(cfg: DictConfig) -> float:
    """The job Hydra runs, once per run or sweep point, each checked by ``main`` already."""
    hydra_config = HydraConfig.get()
    launch.absolute_paths(cfg, hydra_config.runtime.cwd)  # the run dir may be the working dir now
    try:
        return run(cfg, Path(hydra_config.runtime.output_dir))
    except Exception as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", failure(error))  # on the console and in the run's log
        if hydra_config.mode == RunMode.MULTIRUN:
            raise  # the sweeper records the job as failed
        sys.exit(1)


def main() -> None:
    """``python -m app.train`` and ``app-train``: check every run or sweep point, then launch."""
    with launch.shared_config_store():
        try:
            points, problems = launch.check_command(launch.parse_command(sys.argv[1:]))
        except ConfigError as error:
            points, problems = error.points, error.problems
        if problems:
            launch.report(problems, points)
            sys.exit(1)
        try:
            hydra_main()
        except KeyboardInterrupt:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            sys.stderr.write("Interrupted: the run stopped; checkpoints/last.pt holds its last finished epoch.\n")
            sys.exit(130)


if __name__ == "__main__":
    main()
