"""The cross-field rules: what no single field's annotation can say. To add one, write a
generator of ``Problem``s here under ``@cross_rule("what it requires, in words")``; the words
join the rules table of ``--help`` and the README (a test keeps the README listing them).

A rule decides for itself whether it applies, and never by an exception: it asks the config
for the nodes it reads (``cfg.get("trainer")``: app-evaluate's and app-predict's configs have
none; ``cfg.get("hydra")``: ``compose_config`` and Python callers of ``train()`` drop Hydra's)
and recognises a config by its type (``facts.is_a``, ``facts.primary``) or a full ``_target_``
constant of ``app.configs``, never by its keys or a suffix of its name. A rule that raises is
refused as a bug of the launch check (``app.checks.walk``); the test suite fails on it.

The rules on Hydra's node (run dir, sweeper, launcher) are in ``app.checks.hydra_rules``, the
fine-tuning recipes' in ``app.checks.recipe_rules``, the checkpoint files' in
``app.checks.checkpoint_rules``; each registers here in the same way.
``app.checks.facts`` holds what rules read besides the config.
"""

import os
from collections.abc import Callable, Iterator

from omegaconf import DictConfig, OmegaConf

from app.checks.constraints import _num, field_hints
from app.checks.facts import (
    dataset_images,
    gib,
    input_sizes,
    is_a,
    kind,
    processes,
    unwritable,
)
from app.checks.problems import Absent, Problem
from app.configs import (
    TENSORBOARD,
    Cifar10Config,
    Device,
    ImageFolderConfig,
    LinearConfig,
    TensorBoardConfig,
    feature_cache_unused_because,
)

CrossRule = Callable[[DictConfig], Iterator[Problem]]
CROSS_RULES: list[tuple[str, CrossRule]] = []


def cross_rule(description: str) -> Callable[[CrossRule], CrossRule]:
    def register(check: CrossRule) -> CrossRule:
        CROSS_RULES.append((description, check))
        return check

    return register


@cross_rule(f"dataset.image.size fits the extractor: at least its smallest input ({input_sizes()})")
def _image_fits_extractor(cfg: DictConfig) -> Iterator[Problem]:
    extractor = kind(cfg, "feature_extractor")
    if extractor is None or cfg.get("dataset") is None:  # app-evaluate's model is the checkpoint's
        return
    low, high = getattr(extractor, "min_image_size", 1), getattr(extractor, "max_image_size", None)
    size = cfg.dataset.image.size
    if not isinstance(size, int) or low <= size <= (high or size):
        return
    target = cfg.feature_extractor._target_
    if high == low:
        rule, hint = f"= {low}: the one image size {target} is built for", f"use dataset.image.size={low}"
    elif size < low:
        rule, hint = f">= {low}: the smallest image {target} accepts", f"use dataset.image.size={max(low, 64)} or more"
    else:
        rule, hint = f"<= {high}: the largest image {target} accepts", f"use dataset.image.size={high} or less"
    yield Problem("dataset.image.size", str(size), rule, f"{hint}, or another feature_extractor")


@cross_rule(
    "the head's Linear layers chain: the first in_features is feature_extractor.out_features, "
    "each next one the previous out_features, and the last out_features is dataset.classes"
)
def _head_widths_chain(cfg: DictConfig) -> Iterator[Problem]:
    if cfg.get("classifier") is None or cfg.get("feature_extractor") is None or cfg.get("dataset") is None:
        return
    layers = cfg.classifier.get("_args_")
    if isinstance(layers, (list, dict)):  # built by ${oc.decode:...}: plain containers
        layers = OmegaConf.create(layers)
    linear = [
        (i, layer)
        for i, layer in enumerate(layers or [])
        if isinstance(layer, DictConfig) and layer.get("_target_") == LinearConfig._target_
    ]
    if not linear:
        yield Problem(
            "classifier._args_",
            str(OmegaConf.to_container(layers)) if layers is not None else "null",
            "the head has at least one torch.nn.Linear layer",
            "pick a stored head: classifier=small or classifier=large",
        )
        return
    width, source = cfg.feature_extractor.out_features, "feature_extractor.out_features"
    for i, layer in linear:
        ins, outs = layer.get("in_features"), layer.get("out_features")  # None: the walk says it is not given
        if not all(isinstance(v, int) for v in (ins, outs, width)):
            return  # a width of the wrong type: the field's own problem says so
        if ins != width:
            yield Problem(
                f"classifier._args_.{i}.in_features",
                str(ins),
                f"equals {source} ({width})",
                f"leave it to interpolation: classifier._args_.{i}.in_features='${{{source}}}'",
            )
        width, source = outs, f"classifier._args_.{i}.out_features"
    last, classes = linear[-1][0], cfg.dataset.classes
    if width != classes:
        yield Problem(
            f"classifier._args_.{last}.out_features",
            str(width),
            f"equals dataset.classes ({classes}): one score per class",
            "set dataset.classes instead; the last layer follows it",
        )


@cross_rule(
    "dataset=folder: dataset.classes equals the number of class folders under dataset.root, each holds an image, "
    "and dataset.val_root, when set, has the same class folders"
)
def _classes_match_folders(cfg: DictConfig) -> Iterator[Problem]:
    if not is_a(cfg, "dataset", ImageFolderConfig) or not os.path.isdir(cfg.dataset.root):
        return  # a root that is no directory: the field's own problem says so
    from app.files import class_folders, image_files

    root, val_root = cfg.dataset.root, cfg.dataset.val_root
    names = class_folders(root)
    classes = cfg.dataset.classes
    if classes != len(names):
        yield Problem(
            "dataset.classes",
            str(classes),
            f"equals the number of class folders in {root}: {len(names)} ({', '.join(names[:6])}"
            f"{', ...' if len(names) > 6 else ''})",
            f"set dataset.classes={len(names)}",
        )
    for key, folder, expected in [("dataset.root", root, None), ("dataset.val_root", val_root, names)]:
        if folder is None or not os.path.isdir(folder):
            continue
        found = class_folders(folder)
        if expected is not None and found != expected:
            missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
            differences = ([f"it lacks {', '.join(missing)}"] if missing else []) + (
                [f"{', '.join(extra)} {'is' if len(extra) == 1 else 'are'} not in dataset.root"] if extra else []
            )
            yield Problem(
                key,
                str(folder),
                f"the class folders of dataset.root ({', '.join(expected[:6])}{', ...' if len(expected) > 6 else ''})",
                f"{'; '.join(differences)}: give both folders the same classes",
            )
            continue
        empty = [name for name in found if not image_files(folder, name)]
        if empty:
            yield Problem(
                key,
                str(folder),
                "every class folder holds at least one image",
                f"add images to, or remove: {', '.join(empty)}",
            )


@cross_rule("dataset=cifar10: dataset.root holds cifar-10-batches-py, unless dataset.download=true")
def _cifar10_is_there(cfg: DictConfig) -> Iterator[Problem]:
    if not is_a(cfg, "dataset", Cifar10Config) or cfg.dataset.download:
        return
    from app.files import CIFAR10_FOLDER, cifar10_present

    root = cfg.dataset.root
    if not cifar10_present(root):
        yield Problem(
            "dataset.root",
            str(root),
            f"a directory that holds {CIFAR10_FOLDER} (CIFAR-10's python batches) when dataset.download=false",
            f"add dataset.download=true where the network allows, or copy the {CIFAR10_FOLDER} folder into {root}",
            absent=Absent.FILE,
        )


@cross_rule("dataset.val_fraction leaves images for training: both splits hold at least one")
def _splits_hold_images(cfg: DictConfig) -> Iterator[Problem]:
    schema = kind(cfg, "dataset")
    if schema is None or "val_fraction" not in field_hints(schema) or cfg.dataset.get("val_root") is not None:
        return  # a dataset with its own validation split
    from app.files import held_out

    images, fraction = dataset_images(cfg), cfg.dataset.val_fraction
    if images is not None and images - held_out(images, fraction) < 1:
        yield Problem(
            "dataset.val_fraction",
            str(fraction),
            f"leaves images for training: it holds out {held_out(images, fraction)} of the {images} images",
            f"lower it: with {images} images, dataset.val_fraction=0.2 holds out {held_out(images, 0.2)}",
        )


@cross_rule("the images a run holds fit in this machine's memory (dataset.image.size, trainer.batch_size)")
def _images_fit_in_memory(cfg: DictConfig) -> Iterator[Problem]:
    dataset = kind(cfg, "dataset")
    if dataset is None or cfg.get("trainer") is None:
        return
    size, batch = cfg.dataset.image.size, cfg.trainer.batch_size
    image = 3 * size * size * 4  # float32, the RGB the model reads
    held = 4 * batch * image  # a batch on its way, and the loader's prefetched ones
    if getattr(dataset, "in_memory", False):
        held += 2 * (dataset_images(cfg) or 0) * size * size * 4  # resized once, then split
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if held > memory:
        yield Problem(
            "dataset.image.size",
            str(size),
            f"images that fit in memory: at {size} px the run holds about {gib(held)}, this machine has {gib(memory)}",
            "lower dataset.image.size (224 is what ImageNet models see) or trainer.batch_size",
        )


@cross_rule("feature_extractor.weights and feature_extractor.checkpoint are not both set")
def _one_source_of_weights(cfg: DictConfig) -> Iterator[Problem]:
    fe = cfg.get("feature_extractor")
    if fe is not None and fe.get("weights") is not None and fe.get("checkpoint") is not None:
        yield Problem(
            "feature_extractor.checkpoint",
            str(fe.checkpoint),
            "only one of feature_extractor.weights and feature_extractor.checkpoint",
            "drop one of them (feature_extractor.weights=null)",
        )


@cross_rule("optimizer.nesterov=true needs optimizer.momentum > 0 and optimizer.dampening = 0")
def _nesterov_momentum(cfg: DictConfig) -> Iterator[Problem]:
    opt = cfg.get("optimizer")
    if opt is not None and opt.get("nesterov") and not (opt.get("momentum", 0) > 0 and opt.get("dampening", 0) == 0):
        yield Problem(
            "optimizer.nesterov",
            "true",
            "Nesterov momentum needs momentum > 0 and dampening = 0",
            "set optimizer.momentum=0.9 optimizer.dampening=0, or optimizer.nesterov=false",
        )


@cross_rule(
    "trainer.feature_cache_dir is a directory this user can make or write in, when the feature cache is used "
    "(trainer.freeze_extractor=true or trainer.freeze_epochs above 0, trainer.feature_cache=true, no random "
    "dataset.augment or dataset.random_erasing)"
)
def _feature_cache_dir_is_writable(cfg: DictConfig) -> Iterator[Problem]:
    t = cfg.get("trainer")
    if t is None or cfg.get("dataset") is None or feature_cache_unused_because(cfg) is not None:
        return
    blocked = unwritable(os.path.expanduser(t.feature_cache_dir))
    if blocked:
        yield Problem(
            "trainer.feature_cache_dir",
            t.feature_cache_dir,
            "a directory this user can create and write in",
            f"{blocked}: choose another trainer.feature_cache_dir, or set trainer.feature_cache=false",
        )


@cross_rule(
    "trainer.extractor_lr_scale and trainer.layer_decay are 1 when trainer.freeze_extractor=true "
    "(a frozen extractor has no lr)"
)
def _scale_needs_a_trained_extractor(cfg: DictConfig) -> Iterator[Problem]:
    t = cfg.get("trainer")
    if t is None or not t.freeze_extractor:
        return
    for key in ("extractor_lr_scale", "layer_decay"):
        if t[key] != 1:
            yield Problem(
                f"trainer.{key}",
                _num(t[key]),
                "1 when trainer.freeze_extractor=true: a frozen extractor is not trained",
                f"drop trainer.{key}, or set trainer.freeze_extractor=false",
            )


@cross_rule("trainer.resume and trainer.overwrite=true are not both set: a run is continued or replaced")
def _resume_or_overwrite(cfg: DictConfig) -> Iterator[Problem]:
    t = cfg.get("trainer")
    if t is not None and t.resume is not None and t.overwrite:
        yield Problem(
            "trainer.overwrite",
            "true",
            "false when trainer.resume is set: a run is continued or replaced, not both",
            "drop trainer.overwrite=true to continue the run, or trainer.resume",
        )


@cross_rule("scheduler.warmup_epochs < trainer.epochs: the warm-up ends inside the run")
def _warmup_ends_in_the_run(cfg: DictConfig) -> Iterator[Problem]:
    schema = kind(cfg, "scheduler")  # None: ~scheduler, or no trainer either (app-evaluate, app-predict)
    if schema is None or "warmup_epochs" not in field_hints(schema) or cfg.get("trainer") is None:
        return
    warmup, epochs = cfg.scheduler.warmup_epochs, cfg.trainer.epochs
    if 1 <= epochs <= warmup:
        yield Problem(
            "scheduler.warmup_epochs",
            _num(warmup),
            f"< trainer.epochs ({epochs}): the warm-up ends inside the run",
            f"e.g. scheduler.warmup_epochs={max(epochs - 1, 0)}, or more trainer.epochs",
        )


@cross_rule("logger=tensorboard needs the tensorboard package installed")
def _tensorboard_is_there(cfg: DictConfig) -> Iterator[Problem]:
    if is_a(cfg, "logger", TensorBoardConfig) and not TENSORBOARD.installed():
        yield Problem(
            "logger",
            "tensorboard",
            "a logger whose package is installed: tensorboard is not",
            f"{TENSORBOARD.install}, or logger=csv",
            absent=Absent.EXTRA,
        )


@cross_rule(
    "trainer.batch_size is the global batch: it divides evenly over the processes that train one run "
    "(torchrun's --nproc_per_node x --nnodes, or submitit's nodes x tasks_per_node)"
)
def _batch_splits_over_processes(cfg: DictConfig) -> Iterator[Problem]:
    if cfg.get("trainer") is None:
        return
    many, batch = processes(cfg), cfg.trainer.batch_size
    if many > 1 and batch % many:
        fits = max(many, round(batch / many) * many)
        yield Problem(
            "trainer.batch_size",
            str(batch),
            f"a multiple of the {many} processes that train the run: "
            "it is the global batch, each process takes an equal share",
            f"e.g. trainer.batch_size={fits} ({fits // many} images a process)",
        )


@cross_rule("trainer.device=cuda needs a CUDA device that torch can see")
def _cuda_is_there(cfg: DictConfig) -> Iterator[Problem]:
    if cfg.get("trainer") is None or cfg.trainer.device is not Device.cuda:
        return
    import torch  # only for a run that asks for cuda, which would import torch anyway

    if not torch.cuda.is_available():
        yield Problem(
            "trainer.device",
            "cuda",
            "a device this machine has: torch sees no CUDA device",
            "use trainer.device=auto (cuda where there is one) or trainer.device=cpu",
            absent=Absent.DEVICE,
        )
