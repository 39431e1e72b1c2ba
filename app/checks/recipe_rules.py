"""The cross-field rules of the fine-tuning recipes (augmentation policies, layer-wise lr
decay, class balance, mixing), registered in ``app.checks.rules``' table as its own are."""

import math
from collections.abc import Iterator

from omegaconf import DictConfig

from app.checks.constraints import _num
from app.checks.facts import is_a, kind, processes, training_images
from app.checks.problems import Problem
from app.checks.rules import cross_rule
from app.configs import AugmentedDatasetConfig, OneCycleConfig, TrainerConfig, feature_cache_unused_because


@cross_rule(
    "dataset.randaugment_ops and dataset.randaugment_magnitude keep their defaults unless dataset.augment=randaugment"
)
def _randaugment_keys_need_randaugment(cfg: DictConfig) -> Iterator[Problem]:
    policy = getattr(cfg.dataset.get("augment"), "name", None) if is_a(cfg, "dataset", AugmentedDatasetConfig) else None
    if policy in (None, "randaugment"):
        return
    for key in ("randaugment_ops", "randaugment_magnitude"):
        if cfg.dataset[key] != getattr(AugmentedDatasetConfig, key):  # the field's default
            yield Problem(
                f"dataset.{key}",
                _num(cfg.dataset[key]),
                f"used by dataset.augment=randaugment only (this run has dataset.augment={policy})",
                f"add dataset.augment=randaugment, or drop dataset.{key}",
            )


@cross_rule("trainer.layer_decay is 1 for an extractor whose config defines no stages")
def _layer_decay_needs_stages(cfg: DictConfig) -> Iterator[Problem]:
    t, backbone = cfg.get("trainer"), kind(cfg, "feature_extractor")
    if t is None or t.layer_decay == 1 or t.freeze_extractor or backbone is None:  # frozen: rules.py's rule
        return
    if not getattr(backbone, "stages", ()):
        yield Problem(
            "trainer.layer_decay",
            _num(t.layer_decay),
            f"1 for {backbone.__name__}: its config defines no stages to lower the lr of",
            "drop trainer.layer_decay, or give its config class stages "
            "(its modules' dotted name prefixes, from the input up)",
        )


@cross_rule("trainer.class_balance=sampler is not used with trainer.overfit_batches (which trains on fixed batches)")
def _sampler_needs_an_epoch_to_draw(cfg: DictConfig) -> Iterator[Problem]:
    t = cfg.get("trainer")
    if t is not None and t.class_balance.name == "sampler" and t.overfit_batches:
        yield Problem(
            "trainer.class_balance",
            "sampler",
            "not with trainer.overfit_batches: it trains on the same first batches every epoch, and draws none",
            "set trainer.class_balance=loss (it weighs the loss instead), or trainer.overfit_batches=0",
        )


@cross_rule(
    "trainer.mixup_alpha and trainer.cutmix_alpha are 0 when the feature cache is used (it holds the unmixed "
    "images' features); trainer.mix_switch_prob keeps its default unless both are above 0"
)
def _mixing_needs_images(cfg: DictConfig) -> Iterator[Problem]:
    t = cfg.get("trainer")
    if t is None or cfg.get("dataset") is None:
        return
    mixing = [key for key in ("mixup_alpha", "cutmix_alpha") if t[key] > 0]
    if mixing and feature_cache_unused_because(cfg) is None:
        yield Problem(
            f"trainer.{mixing[0]}",
            _num(t[mixing[0]]),
            "0 with the feature cache: it holds the features of unmixed images, and mixing needs the images",
            "set trainer.feature_cache=false (the frozen extractor then runs on the mixed images), or drop the mixing",
        )
    if len(mixing) < 2 and t.mix_switch_prob != TrainerConfig.mix_switch_prob:
        yield Problem(
            "trainer.mix_switch_prob",
            _num(t.mix_switch_prob),
            "used only when both trainer.mixup_alpha and trainer.cutmix_alpha are above 0 (it picks one per batch)",
            "set both alphas above 0, or drop trainer.mix_switch_prob",
        )


@cross_rule("trainer.freeze_epochs is 0 with trainer.freeze_extractor=true (which freezes for the whole run)")
def _staged_or_frozen(cfg: DictConfig) -> Iterator[Problem]:
    t = cfg.get("trainer")
    if t is not None and t.freeze_epochs and t.freeze_extractor:
        yield Problem(
            "trainer.freeze_epochs",
            str(t.freeze_epochs),
            "0 when trainer.freeze_extractor=true, which freezes the extractor for the whole run",
            "drop trainer.freeze_extractor to train the extractor after the first trainer.freeze_epochs epochs, "
            "or drop trainer.freeze_epochs",
        )


@cross_rule(
    "scheduler=onecycle: at least 3 optimizer steps in the run (trainer.epochs x steps per epoch; "
    "checked where the dataset's size is known)"
)
def _onecycle_has_steps(cfg: DictConfig) -> Iterator[Problem]:
    if not is_a(cfg, "scheduler", OneCycleConfig) or cfg.get("trainer") is None:
        return
    images = training_images(cfg)
    if images is None:
        return
    t, world = cfg.trainer, processes(cfg)
    if t.overfit_batches:
        images = min(images, t.overfit_batches * t.batch_size)
    share, batch = math.ceil(images / world), max(t.batch_size // world, 1)  # each process's, as the job splits them
    # a last batch of one image may be dropped (batch norm): counted as dropped, the fewer steps
    batches = share // batch if share % batch == 1 and share > batch else math.ceil(share / batch)
    per_epoch = math.ceil(batches / t.accumulate_batches)
    total = cfg.scheduler.epochs * per_epoch
    if total < 3:
        accumulated = f", {t.accumulate_batches} batches a step" if t.accumulate_batches > 1 else ""
        yield Problem(
            "scheduler",
            "onecycle",
            f"at least 3 optimizer steps in the run (it rises, peaks and falls): this one has {total} "
            f"({cfg.scheduler.epochs} epoch{'s' if cfg.scheduler.epochs != 1 else ''} x {per_epoch}: {images} "
            f"training images in batches of "
            f"{t.batch_size}{accumulated})",
            "train longer (trainer.epochs), on smaller batches (trainer.batch_size) or fewer accumulated "
            "(trainer.accumulate_batches), or use scheduler=cosine",
        )
