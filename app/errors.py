"""Every exception the app raises on purpose, each carrying the hint a person acts on.

``app.training.runtime.failure`` turns any of them into the one paragraph a failed job prints:
what failed (the message) and what to do (``hint``). Code asks the type (``isinstance``), never
the class name or the message. A torch-free leaf: the launch side, the job side and the
commands all raise these. (``app.checks.ConfigError``, the launch check's refusal, is one too.)
"""

from typing import ClassVar


class AppError(Exception):
    """An error of the app whose remedy is known: ``hint`` says it."""

    hint: ClassVar[str] = "set HYDRA_FULL_ERROR=1 to see where it failed"


class CheckpointError(AppError, ValueError):
    """A checkpoint that cannot be read, was not written by this app, or does not fit the model."""

    hint = "give trainer.resume a checkpoints/last.pt or best.pt this app wrote, for this model"


class ExtractorWeightsDoNotFit(CheckpointError):
    """``feature_extractor.checkpoint`` holds weights of another body than the one chosen."""

    hint = (
        "give feature_extractor.checkpoint a state dict of the chosen feature_extractor's torchvision model, or "
        "a checkpoint of a run with it; or choose the feature_extractor the file is of (app-check names it)"
    )


class RunChanged(CheckpointError):
    """A resumed run whose config differs from its checkpoint's where a run cannot change and
    stay the same run (``TrainerConfig.resume_may_change`` names what may)."""

    hint = (
        "leave those keys as the run had them (its config.yaml shows them), or start a new run in another hydra.run.dir"
    )


class ClassesDiffer(AppError, ValueError):
    """A dataset evaluated by a model whose classes are named otherwise: scored by position, its
    figures would be another dataset's."""

    hint = "evaluate on images whose classes are named as the run's (rename the class folders to match)"


class UntrustedCheckpoint(CheckpointError):
    """A checkpoint whose config would build what no config of the app builds (a ``_target_``
    the allow-list refuses): altered, or written by other code. Nothing of it is built."""

    hint = (
        "load only checkpoints that app-train wrote and you trust; a torchvision state dict is for "
        "feature_extractor.checkpoint="
    )


class ChangedInTheJob(AppError, ValueError):
    """The config, resolved in the job, builds what the launch check refuses: a value that the
    job's environment or clock changes (``oc.env`` under ``hydra.job.env_set``, ``now``, a
    resolver of the user's) decides what is built."""

    hint = "write that value out on the command line instead of an interpolation the job resolves differently"


class WeightsUnavailable(AppError, OSError):
    """torchvision's weights are not on this machine and cannot be downloaded."""

    hint = "a download failed (offline?): give a local state dict with feature_extractor.checkpoint=PATH"


class WeightsUnreadable(AppError, ValueError):
    """The file in torch's hub cache for torchvision's weights is not a plain state dict: cut
    short, another file, or one made to run code when read (which it is never allowed to)."""

    hint = (
        "delete that file (the next run downloads torchvision's own and checks its hash), or give a "
        "state dict you trust with feature_extractor.checkpoint=PATH"
    )


class DownloadFailed(AppError, OSError):
    """A dataset could not be downloaded (offline, say)."""

    hint = "without the network, copy the cifar-10-batches-py folder into dataset.root and set dataset.download=false"


class UnsafeDataFile(AppError, ValueError):
    """A dataset file that is not what it should be: a pickle that would import or call more than
    a CIFAR-10 batch does (which could run any code), or one cut short."""

    hint = (
        "replace dataset.root's cifar-10-batches-py with the one torchvision extracts: move it away and "
        "set dataset.download=true (the archive's md5 is checked), or copy a trusted one"
    )


class CorruptImages(AppError, ValueError):
    """Image files the scan before training could not decode (``dataset.corrupt=fail``)."""

    hint = "remove or replace those files, or set dataset.corrupt=skip to leave them out"


class EmptyClass(AppError, ValueError):
    """A training split where a class has no image: ``trainer.class_balance`` cannot weigh it."""

    hint = (
        "give that class training images (or fewer dataset.classes), or set trainer.class_balance=none; "
        "a small dataset.train_size or a seeded split can leave a rare class out"
    )


class NonFiniteLoss(AppError, FloatingPointError):
    """The training loss became nan or inf: the run stops without saving what followed."""

    hint = (
        "lower optimizer.lr, or set trainer.clip_grad_norm (e.g. 1.0) or scheduler.warmup_epochs; "
        "trainer.precision=fp32 rules out a bf16/fp16 overflow"
    )


class RunDirBusy(AppError, RuntimeError):
    """Another live run writes in this run dir."""

    hint = "wait for that run, or choose another hydra.run.dir"


class RunDirTaken(AppError, FileExistsError):
    """The run dir holds an earlier run that this one neither continues nor replaces."""

    hint = "choose another hydra.run.dir, or add trainer.resume=auto or trainer.overwrite=true"


class PeerLost(AppError, RuntimeError):
    """A collective failed because another process of the run ended (its own error is the one to read)."""

    hint = "its own error is above (torchrun names the rank that failed first) and in its train.rank<N>.log"


class RankZeroFailed(AppError, RuntimeError):
    """Rank 0 failed at a step the other processes wait on; its own error says why."""

    hint = "rank 0's error is above and in the run dir's train.log"


class Stopped(AppError):
    """The run stopped on a signal after writing ``checkpoints/last.pt``; the message holds the
    command that resumes it."""

    hint = "run the command above to continue where it stopped"

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


class Interrupted(KeyboardInterrupt):
    """A second signal: the run stops where it is (its last checkpoint stays as it was). A
    ``KeyboardInterrupt``, so that nothing on the way catches it as an error."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class UnreadableImage(AppError, OSError):
    """An image file the app will not decode: not a regular file, too many pixels, too elongated,
    or not an image PIL reads. The scan before training leaves such files out (``dataset.corrupt``);
    met while training, the file changed since that scan."""

    hint = (
        "replace or remove that file (downscale a huge picture first), or set dataset.corrupt=skip "
        "to leave such files out; a file replaced while a run reads it fails the run"
    )

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)  # one argument: a loader worker's copy is rebuilt from it
        self.reason = reason or message


class FileRefused(AppError, OSError):
    """A file the app reads back (a run dir's YAML or JSON, a cache's index, a checkpoint's
    pickle) that is not what the app writes there: not a regular file, too large, an alias."""

    hint = "remove or replace that file: it is not one this app wrote"


class DiskFull(AppError, OSError):
    """A write failed for want of room (no space left, over quota, over the file-size limit);
    the file it replaces is left as it was, and no half-written file is left beside it."""

    hint = (
        "free space on that disk (or raise the quota or ulimit -f), or write elsewhere "
        "(hydra.run.dir, trainer.feature_cache_dir); trainer.resume=auto continues from checkpoints/last.pt"
    )


class RangeTooShort(AppError, ValueError):
    """The learning-rate range test diverged, or ran out of finite losses, before it had a curve
    to read a suggestion from."""

    hint = "start lower (--start-lr) or end lower (--end-lr), or give it more --steps"
