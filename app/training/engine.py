"""One pass over a loader, training or evaluating: how each batch is computed (``Step``: device,
precision, memory format), what turns a pass into training (``Training``: optimizer, schedule,
accumulation, clipping, label smoothing, EMA) and the non-finite check. What app-evaluate and
app-predict compute is in ``app.training.inference``."""

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from app.errors import NonFiniteLoss
from app.training.loaders import Batches
from app.training.mixing import Mixing
from app.training.signals import GracefulStop

log = logging.getLogger("app.engine")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():  # the launch check refuses it first
        raise RuntimeError("trainer.device=cuda, but torch sees no CUDA device: use auto or cpu")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 in hardware, not by emulation: CUDA GPUs from
    Ampere (compute capability 8.0) on, CPUs with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        cpu = torch.cpu
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(cpu, name, lambda: False)() for name in checks)
    return False


def resolve_precision(name: str, device: torch.device) -> str:
    """``auto`` is bf16 where ``device`` runs it natively (1.6x fp32 for AlexNet on a 2-core
    AVX512-BF16 CPU, measured in docs/benchmarks.md), else fp32."""
    if name != "auto":
        return name
    return "bf16" if native_bf16(device) else "fp32"


AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Step:
    """How each batch is computed: where, in which precision and memory format."""

    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        self.dtype = AUTOCAST_DTYPES[self.precision]
        # float16 gradients underflow without scaling; bfloat16 and float32 need none, and get a
        # disabled scaler whose calls pass through: one code path for every precision.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.memory_format = torch.channels_last if self.channels_last else torch.contiguous_format

    def inputs(self, batch: torch.Tensor) -> torch.Tensor:
        """``batch`` on the device, images in this step's memory format (a 2-D batch of cached
        features has no channels to lay out, and keeps its own)."""
        layout = self.memory_format if batch.dim() == 4 else torch.preserve_format
        return batch.to(self.device, non_blocking=True, memory_format=layout)


@dataclass
class Training:
    """What turns a pass into training: the optimizer and what goes with each of its steps."""

    optimizer: torch.optim.Optimizer
    scheduler: Optional[LRScheduler] = None
    accumulate_batches: int = 1
    clip_grad_norm: Optional[float] = None
    label_smoothing: float = 0.0
    ema: Optional[AveragedModel] = None
    class_weights: Optional[torch.Tensor] = None  # trainer.class_balance=loss, on the step's device
    mixing: Optional[Mixing] = None  # trainer.mixup_alpha, trainer.cutmix_alpha
    steps: int = 0  # optimizer steps taken in the whole run
    on_step: Optional[Callable[[int, torch.Tensor, float], None]] = None  # (step, loss, lr) every step
    profiler: Optional["StepProfiler"] = None  # stepped after every optimizer step


@dataclass
class Progress:
    """A pass so far: the batches done and the sums its figures come from."""

    batches: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0


@dataclass
class PassResult:
    loss: float
    acc: float
    images: int
    seconds: float
    progress: Progress = field(default_factory=Progress)
    complete: bool = True  # False: stopped by a signal after ``progress.batches`` batches


def run_pass(
    model: nn.Module,
    loader: Batches,
    step: Step,
    training: Optional[Training] = None,
    desc: str = "",
    start: Optional[Progress] = None,
    stop: Optional[GracefulStop] = None,
) -> PassResult:
    """Train on every batch when given ``training``, else evaluate without gradients.

    ``start`` continues a pass stopped part-way (the loader then skips the batches it did).
    Training stops early, at an optimizer step, when ``stop`` has been requested.
    """
    device = step.device
    model.train(training is not None)
    start = start or Progress()
    loss_sum = torch.tensor(start.loss_sum, device=device)  # summed on the device: no sync per step
    correct = torch.tensor(start.correct, device=device, dtype=torch.long)
    seen, batches, total = start.seen, start.batches, start.batches + len(loader)
    accumulate = training.accumulate_batches if training else 1
    complete, previous = True, None
    began = time.perf_counter()
    with torch.set_grad_enabled(training is not None):
        bar = tqdm(loader, desc=desc, leave=False, disable=None, unit="batch", initial=batches, total=total)
        wrapped = getattr(model, "_orig_mod", model)  # torch.compile's module holds the DDP one
        syncs = training is not None and accumulate > 1 and hasattr(wrapped, "require_backward_grad_sync")
        for images, labels in bar:
            batches += 1
            stepping = batches % accumulate == 0 or batches == total
            if syncs:  # DistributedDataParallel: gradients are averaged over the processes once per
                # optimizer step, not per accumulated batch (its no_sync(), as the flag its forward reads)
                wrapped.require_backward_grad_sync = stepping
            labels = labels.to(device, non_blocking=True)
            logits, loss, scored = _forward(model, step.inputs(images), labels, step, training, batches)
            if training is not None:
                scaled = loss / accumulate if accumulate > 1 else loss  # a division is a kernel launch
                step.scaler.scale(scaled).backward()  # type: ignore[no-untyped-call]
                if stepping:
                    optimizer_step(training, step, model, loss.detach())
                    if stop is not None and batches < total and stop.asked():
                        complete = False
                # Checked one step late: waiting for the previous loss leaves this step queued on
                # the device, where a check of this one would idle a fast GPU every step. The run
                # stops with the bad batch named, before any checkpoint holds what it did.
                _finite(previous, batches - 1, total)
                previous = loss.detach()
            # Each op here is a kernel launch per step, which a fast GPU waits on: keep them few.
            loss_sum.add_(loss.detach(), alpha=len(labels))
            correct.add_((logits.argmax(1) == scored).sum())
            seen += len(labels)
            if not complete:
                break
        bar.close()
    _finite(previous, batches, total)
    seconds = start.seconds + time.perf_counter() - began
    progress = Progress(batches, loss_sum.item(), int(correct.item()), seen, seconds)
    return PassResult(
        progress.loss_sum / max(seen, 1), progress.correct / max(seen, 1), seen, seconds, progress, complete
    )


def _forward(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, step: Step, training: Optional[Training], batch: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, loss, the label each image is scored against) of batch number ``batch`` under
    the step's autocast; in training, its label smoothing and class weights, and its mixing: the
    loss then takes soft targets (``[batch, classes]`` probabilities), and an image is scored
    against its larger share."""
    targets = labels
    if training is not None and training.mixing is not None:
        images, targets = training.mixing(images, labels, batch)
    with torch.autocast(step.device.type, dtype=step.dtype, enabled=step.dtype is not None):
        logits = model(images)
        if training is None:
            return logits, nn.functional.cross_entropy(logits, labels), labels
        loss = nn.functional.cross_entropy(
            logits, targets, weight=training.class_weights, label_smoothing=training.label_smoothing
        )
        return logits, loss, targets.argmax(1) if targets.ndim > 1 else labels


def whole(result: PassResult, sums: Callable[[list[float]], list[float]]) -> PassResult:
    """``result`` over every process: its loss, hits and images added up by ``sums`` (the
    batches and seconds stay this process's own)."""
    p = result.progress
    loss_sum, correct, seen = sums([p.loss_sum, p.correct, p.seen])
    progress = Progress(p.batches, loss_sum, int(correct), int(seen), p.seconds)
    return PassResult(
        loss_sum / max(seen, 1), correct / max(seen, 1), int(seen), result.seconds, progress, result.complete
    )


def _finite(loss: Optional[torch.Tensor], batch: int, total: int) -> None:
    value = loss.item() if loss is not None else 0.0  # one copy; isfinite() would add a kernel
    if not math.isfinite(value):
        raise NonFiniteLoss(f"the training loss is {value} at batch {batch}/{total}")


def optimizer_step(training: Training, step: Step, model: nn.Module, loss: torch.Tensor) -> None:
    """One optimizer step on the gradients accumulated so far, then what follows it."""
    optimizer = training.optimizer
    if training.clip_grad_norm is not None:
        step.scaler.unscale_(optimizer)  # clip the true gradients, not fp16's scaled ones
        params = [p for group in optimizer.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(params, training.clip_grad_norm)
    step.scaler.step(optimizer)
    step.scaler.update()
    optimizer.zero_grad(set_to_none=True)
    training.steps += 1
    if training.on_step is not None:
        training.on_step(training.steps, loss, optimizer.param_groups[0]["lr"])
    if training.scheduler is not None:
        training.scheduler.step()
    if training.ema is not None:
        training.ema.update_parameters(model)
    if training.profiler is not None:
        training.profiler.step()


def exponential_average(model: nn.Module, decay: float) -> AveragedModel:
    """An EMA of ``model``'s weights and buffers, as torchvision's reference trainer keeps."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)  # type: ignore[no-untyped-call]


def compiled(model: nn.Module, images: torch.Tensor, step: Step) -> nn.Module:
    """``torch.compile(model)``, tried on ``images`` in training and in evaluation; ``model``
    itself, with a warning, where it does not compile. The trial changes nothing in ``model``."""
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    fast: nn.Module = torch.compile(model)  # type: ignore[assignment]
    images = step.inputs(images)
    try:
        with torch.autocast(step.device.type, dtype=step.dtype, enabled=step.dtype is not None):
            fast.train()
            fast(images).float().sum().backward()
            fast.eval()
            with torch.no_grad():
                fast(images)
    except Exception as error:  # torch.compile raises many kinds (no compiler, an unsupported op)
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        log.warning("trainer.compile=true: torch.compile failed (%s); training without it", reason)
        fast = model
    finally:
        model.zero_grad(set_to_none=True)
        model.load_state_dict(kept)
        torch.set_rng_state(rng)
    return fast


class StepProfiler:
    """torch's profiler over the first ``steps`` optimizer steps: a Chrome trace and a table of
    the costliest ops in ``out_dir``."""

    def __init__(self, steps: int, out_dir: Path, device: torch.device) -> None:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        self.steps, self.out_dir, self.taken = steps, out_dir, 0
        self.profile: Optional[profile] = profile(activities=activities, record_shapes=True)
        self.profile.start()

    def step(self) -> None:
        self.taken += 1
        if self.taken == self.steps:
            self.close()

    def close(self) -> None:
        """Stop and write what was recorded (once)."""
        if self.profile is not None:
            profile, self.profile = self.profile, None
            profile.stop()
            self.out_dir.mkdir(parents=True, exist_ok=True)
            profile.export_chrome_trace(str(self.out_dir / "trace.json"))
            table = profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
            (self.out_dir / "ops.txt").write_text(table + "\n")
            log.info(
                "profile of %d steps in %s (open trace.json in Perfetto or chrome://tracing)", self.taken, self.out_dir
            )


@contextlib.contextmanager
def deterministic(enabled: bool) -> Iterator[None]:
    """torch's deterministic algorithms while the run lasts (then as they were)."""
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it to be deterministic
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]
