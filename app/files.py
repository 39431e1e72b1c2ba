"""Data and run layouts, read without torch (the launch check uses them too): an
ImageFolder-style dataset on disk, how a dataset is split, and a run dir with the lock that
keeps two live runs out of the same one."""

import codecs
import contextlib
import fcntl
import io
import logging
import os
import pickle
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

from app.configs import RESUME_AUTO, Corrupt
from app.errors import CorruptImages, RunDirBusy, UnsafeDataFile

log = logging.getLogger("app.data")  # the scan's warnings, under "app": in the run's train.log

# torchvision.datasets.folder.IMG_EXTENSIONS (0.29), copied so that the launch check stays
# torch-free; a test compares the two.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# torchvision's CIFAR10 reads these python pickles from <root>/cifar-10-batches-py.
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST, CIFAR10_META = "test_batch", "batches.meta"

# What a run writes in its dir, besides Hydra's .hydra/ and the job's log.
METRICS, SUMMARY, CHECKPOINTS, CONFIG = "metrics.csv", "summary.json", "checkpoints", "config.yaml"
CURVES, TENSORBOARD, PROFILE = "curves.png", "tensorboard", "profile"
EVALUATION, CONFUSION, PREDICTIONS = "metrics.json", "confusion.png", "predictions.csv"  # app-evaluate, app-predict
LAST = os.path.join(CHECKPOINTS, "last.pt")  # what trainer.resume=auto continues from
LOCK = ".lock"  # held by the live run, with its pid in it
# How the job that last ran in a run dir ended (completed, failed with its error, stopped), beside
# Hydra's .hydra/ and, like it, replaced by the next job there: not an artefact of the run.
STATUS = "status.json"
CHECKPOINT_FORMAT = "app-train checkpoint 1"  # the "format" of every checkpoint app-train writes


def class_folders(root: str) -> list[str]:
    """The class names under ``root``: its subfolders, sorted, as torchvision's ImageFolder."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def image_files(root: str, name: str) -> list[str]:
    """The images of class ``name``, found in its folder and every folder below it."""
    return image_files_under(os.path.join(root, name))


def image_files_under(path: str) -> list[str]:
    """``path`` if it is a file, else every image in it and below it, in torchvision's
    ImageFolder order (folders walked sorted, each one's files sorted)."""
    if not os.path.isdir(path):
        return [path]
    found = []
    for folder, _, names in sorted(os.walk(path, followlinks=True)):
        found += [os.path.join(folder, n) for n in sorted(names) if n.lower().endswith(IMG_EXTENSIONS)]
    return found


def cifar10_present(root: str) -> bool:
    """True when ``root`` holds CIFAR-10's python batches, as torchvision extracts them."""
    folder = os.path.join(os.path.expanduser(root), CIFAR10_FOLDER)
    return all(os.path.isfile(os.path.join(folder, n)) for n in (*CIFAR10_TRAIN, CIFAR10_TEST, CIFAR10_META))


# The callables a CIFAR-10 python batch names (written by Python 2's cPickle with numpy 1.x:
# numpy's array rebuilder, ndarray and dtype), as numpy 2 names them too (numpy._core), its
# protocol-5 buffer rebuilder, and _codecs.encode, Python 3's bytes at protocol 2.
CIFAR10_PICKLED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArraysReader(pickle.Unpickler):
    """Reads a pickle of dicts, lists, strings and numpy arrays: any other callable it names
    (``os.system``, ``builtins.exec``) is refused before it is imported, so nothing in it runs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in CIFAR10_PICKLED:
            raise pickle.UnpicklingError(f"it calls {module}.{name}, which a CIFAR-10 batch never does")
        import numpy as np

        array = np.zeros(1, np.uint8)
        return {  # numpy's own rebuilders, wherever this numpy keeps them
            "_reconstruct": array.__reduce__()[0],
            "_frombuffer": array.__reduce_ex__(5)[0],
            "ndarray": np.ndarray,
            "dtype": np.dtype,
            "encode": codecs.encode,
        }[name]


def _cifar10_file(path: str) -> dict[str, Any]:
    """A CIFAR-10 pickle's dict, its bytes keys read as text (torchvision's ``encoding="latin1"``)."""
    try:
        with open(path, "rb") as f:
            entry = _ArraysReader(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise UnsafeDataFile(f"{path} is not a CIFAR-10 python batch: {error}") from None
    if not isinstance(entry, dict):
        raise UnsafeDataFile(f"{path} is not a CIFAR-10 python batch: it holds a {type(entry).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def cifar10_batch(path: str) -> tuple[Any, list[int]]:
    """A CIFAR-10 python batch's images (uint8, ``[N, 32, 32, 3]``) and labels, read without
    running anything the file holds: ``UnsafeDataFile`` for any other content."""
    import numpy as np

    entry = _cifar10_file(path)
    data, labels = entry.get("data"), entry.get("labels")
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == 3 * 32 * 32
        and isinstance(labels, list)
        and len(labels) == len(data)
        and all(isinstance(label, int) for label in labels)
    ):
        raise UnsafeDataFile(f"{path} is not a CIFAR-10 python batch: no uint8 data [N, 3072] with N int labels")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def cifar10_names(path: str) -> list[str]:
    """The class names in CIFAR-10's ``batches.meta``, read as ``cifar10_batch`` reads a batch."""
    names = _cifar10_file(path).get("label_names")
    if not isinstance(names, list) or not all(isinstance(n, (str, bytes)) for n in names):
        raise UnsafeDataFile(f"{path} is not CIFAR-10's batches.meta: no list of label_names")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


def held_out(images: int, val_fraction: float) -> int:
    """How many of ``images`` a seeded split holds out for validation: at least one."""
    return max(1, round(images * val_fraction))


def run_artefacts(run_dir: str) -> list[str]:
    """The artefacts of a run already in ``run_dir`` (none if it does not exist)."""
    names = (METRICS, SUMMARY, CHECKPOINTS, CONFIG, CURVES, TENSORBOARD, PROFILE, EVALUATION, CONFUSION, PREDICTIONS)
    return [name for name in names if os.path.exists(os.path.join(run_dir, name))]


def next_job(sweep_dir: str) -> int:
    """The job number after the highest numbered job dir in ``sweep_dir`` (0 when there is none)."""
    try:
        numbers = [int(name) for name in os.listdir(sweep_dir) if name.isdigit()]
    except OSError:  # no sweep dir yet
        return 0
    return max(numbers, default=-1) + 1


def checkpoint_to_resume(run_dir: str, resume: Optional[str]) -> Optional[str]:
    """The checkpoint ``trainer.resume`` names: a path, or for ``auto`` the run dir's
    ``checkpoints/last.pt`` when there is one; None for a run that starts from the beginning."""
    if resume != RESUME_AUTO:
        return resume
    last = os.path.join(run_dir, LAST)
    return last if os.path.isfile(last) else None


class _Dict(dict[Any, Any]):
    """A state dict's ``OrderedDict``, which pickle gives attributes (``_metadata``)."""


class _ConfigReader(pickle.Unpickler):
    """Reads a checkpoint's pickle with every tensor and class left out: plain data only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return _Dict
        return _left_out  # torch's tensor rebuilders, and anything else: never imported, never run

    def persistent_load(self, pid: Any) -> None:
        return None  # a tensor's storage, in its own file of the archive


def _left_out(*args: Any, **kwargs: Any) -> None:
    return None


def checkpoint_config(path: str) -> Optional[dict[str, Any]]:
    """The resolved config saved in a checkpoint app-train wrote, read without torch (about
    10 ms: the tensors' data stays in the archive); None for any other file."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1)
            state = _ConfigReader(io.BytesIO(archive.read(name))).load()
    except (
        OSError,
        StopIteration,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
    ):
        return None
    if (
        not isinstance(state, dict)
        or state.get("format") != CHECKPOINT_FORMAT
        or not isinstance(state.get("config"), dict)
    ):
        return None
    return dict(state["config"])


def _temporary(path: Path) -> Path:
    """This process's own temporary name beside ``path`` (hidden, so no reader takes it for it)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_atomically(path: Path, write: Any) -> None:
    """Write through a temporary file of this process's own, flushed to disk before it replaces
    ``path``, so that no interruption (a kill, a power cut) leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        write(tmp)
        with tmp.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:  # an error, or a second signal: no temporary file left behind
        tmp.unlink(missing_ok=True)
        raise


def link_atomically(source: Path, path: Path) -> None:
    """Give ``source``'s file (written whole already) a second name, ``path``: no copy."""
    tmp = _temporary(path)
    tmp.unlink(missing_ok=True)
    os.link(source, tmp)
    os.replace(tmp, path)


def remove_run_artefacts(run_dir: str) -> None:
    """Delete what an earlier run left in ``run_dir``, so that nothing of it mixes with a new one."""
    for name in run_artefacts(run_dir):
        path = os.path.join(run_dir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def lock_holder(run_dir: str) -> Optional[int]:
    """The pid of the live run that holds ``run_dir``'s lock, or None when no run does."""
    try:
        fd = os.open(os.path.join(run_dir, LOCK), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None  # a lock file whose run has ended: the kernel let go of its lock
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)


@contextlib.contextmanager
def run_lock(run_dir: str) -> Iterator[None]:
    """Hold ``run_dir``'s lock while the run writes there; ``RunDirBusy`` if a live run holds it.

    An flock, so a run killed at any moment lets go of it with its last file descriptor.
    """
    os.makedirs(run_dir, exist_ok=True)
    fd = os.open(os.path.join(run_dir, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunDirBusy(f"another run (pid {lock_holder(run_dir)}) is writing in {run_dir}") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.remove(os.path.join(run_dir, LOCK))
        os.close(fd)


# ------------------------------------------------------------------ images that do not decode
def unreadable(files: Sequence[str]) -> dict[str, str]:
    """The files of ``files`` that PIL cannot decode, each with why.

    ``verify()`` reads the container: for PNG every chunk's CRC and the end marker (a truncated
    or bit-flipped file), for others little more than the header; ``load()`` then decodes the
    pixels, which catches a truncated JPEG or a broken deflate stream (JPEGs decode at 1/8 scale,
    ``draft``, still reading the whole stream). What neither catches: a file that decodes to
    the wrong picture. Measured on this project's 2-core CPU: 2,000 PNGs of 32x32 random pixels
    in 0.49 s (``verify()`` alone: 0.18 s), 2,000 JPEGs of 256x256 in 1.95 s; once per run.
    """
    from PIL import Image

    bad = {}
    for path in files:
        try:
            with Image.open(path) as picture:
                picture.verify()
            with Image.open(path) as picture:
                picture.draft(picture.mode, (1, 1))
                picture.load()
        except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
            bad[path] = " ".join(f"{type(error).__name__}: {error}".split())
    return bad


def screened(files: list[str], labels: list[int], corrupt: Corrupt) -> tuple[list[str], list[int]]:
    """``files`` and their labels without those PIL cannot decode (``skip``, with a warning), or
    ``CorruptImages`` naming them (``fail``)."""
    bad = unreadable(files)
    if not bad:
        return files, labels
    first = "; ".join(f"{path} ({why})" for path, why in list(bad.items())[:5])
    listing = first + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
    if corrupt is Corrupt.fail:
        raise CorruptImages(f"{len(bad)} of {len(files)} image files cannot be read: {listing}")
    log.warning(
        "dataset.corrupt=skip: %d of %d image files cannot be read and are left out: %s", len(bad), len(files), listing
    )
    kept = [i for i, path in enumerate(files) if path not in bad]
    return [files[i] for i in kept], [labels[i] for i in kept]
