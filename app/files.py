"""Data and run layouts, read without torch (the launch check uses them too): an
ImageFolder-style dataset on disk, how a dataset is split, and a run dir with the lock that
keeps two live runs out of the same one."""

import codecs
import contextlib
import errno
import fcntl
import io
import logging
import os
import pickle
import shutil
import stat
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NoReturn, Optional

from app.configs import RESUME_AUTO
from app.errors import DiskFull, FileRefused, RunDirBusy, RunDirTaken, UnsafeDataFile

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
# Written by every job of this app in its run dir once it holds the lock: trainer.overwrite
# replaces the artefacts of a dir that has it, and never touches a dir that has not (files that
# merely share an artefact's name, like a config.yaml of another program's, are not a run).
MARKER = ".app-run"
HYDRA = ".hydra"  # Hydra's config.yaml, hydra.yaml and overrides.yaml, written by the job once it holds the lock
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
    ImageFolder order (folders walked sorted, each one's files sorted). Links to folders are
    followed, but a folder already walked (a link back up: a loop; a second link to one) is not
    walked again, with a warning."""
    if not os.path.isdir(path):
        return [path]
    found, seen = [], {_identity(path)}
    walked = os.walk(
        path,
        followlinks=True,
        onerror=_not_walked,
    )
    for folder, dirs, names in walked:
        dirs.sort()  # a deterministic walk: which of two links to one folder is walked is fixed
        for name in list(dirs):
            identity = _identity(os.path.join(folder, name))
            if identity is None or identity in seen:
                dirs.remove(name)
                log.warning(
                    "%s: a link to a folder already walked (or gone), left out", shown(os.path.join(folder, name))
                )
            seen.add(identity)
        found.append((folder, [os.path.join(folder, n) for n in sorted(names) if n.lower().endswith(IMG_EXTENSIONS)]))
    return [file for _, files in sorted(found) for file in files]


def _not_walked(error: OSError) -> None:
    log.warning("%s: not walked (%s)", shown(str(error.filename)), error.strerror)


def _identity(path: str) -> Optional[tuple[int, int]]:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def shown(path: str) -> str:
    """``path`` as text any log line or UTF-8 file takes: each byte of a name that is not UTF-8
    (which Python holds as a lone surrogate, and a UTF-8 writer refuses) written ``\\xNN``."""
    try:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file system gave: escaped as it is
        return path.encode("utf-8", "backslashreplace").decode("utf-8")


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


# The largest data.pkl a checkpoint may hold: 16 MiB. It holds the config, the random states and
# the state dicts' structure (the tensors' bytes are other members): 40 kB for AlexNet's, about
# 300 kB for ViT-B/16 with Adam and an EMA. Read whole, it is the unpickler's input, and what the
# unpickler builds grows with it (at most about 60 bytes of objects a byte of pickle: a list of
# Nones); no unpickled object is callable but an OrderedDict, so nothing multiplies.
MAX_CHECKPOINT_PICKLE = 16 * 2**20
# What reading a file that is no checkpoint of the app's raises: among them a pickle nested
# deeper than Python's stack (RecursionError), refused, not a crash.
_NOT_A_CHECKPOINT = (OSError, KeyError, ValueError, TypeError, AttributeError, EOFError, MemoryError, RecursionError,
                     zipfile.BadZipFile, pickle.UnpicklingError)  # fmt: skip


def checkpoint_pickle(path: str) -> bytes:
    """The ``<name>/data.pkl`` of a checkpoint's zip, at most ``MAX_CHECKPOINT_PICKLE`` bytes, as
    declared and as read (else ``FileRefused``); ``StopIteration`` when there is none."""
    with regular_file(path) as f, zipfile.ZipFile(f) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1)
        with archive.open(info) as member:  # reads no more than the size it declares, and this reads at most one more
            data = member.read(MAX_CHECKPOINT_PICKLE + 1) if info.file_size <= MAX_CHECKPOINT_PICKLE else b""
    if not data or len(data) > MAX_CHECKPOINT_PICKLE:
        size = f"{max(info.file_size, len(data)):,} bytes"
        raise FileRefused(
            f"{shown(path)}: its {info.filename} holds {size}, more than a checkpoint's {MAX_CHECKPOINT_PICKLE:,}"
        )
    return data


def checkpoint_config(path: str) -> Optional[dict[str, Any]]:
    """The resolved config saved in a checkpoint app-train wrote, read without torch (about
    10 ms: the tensors' data stays in the archive); None for any other file."""
    try:
        state = _ConfigReader(io.BytesIO(checkpoint_pickle(path))).load()
    except _NOT_A_CHECKPOINT:
        return None
    if (
        not isinstance(state, dict)
        or state.get("format") != CHECKPOINT_FORMAT
        or not isinstance(state.get("config"), dict)
    ):
        return None
    return dict(state["config"])


# ------------------------------------------------------------------ files read back, bounded
@contextlib.contextmanager
def regular_file(path: str | Path) -> Iterator[IO[bytes]]:
    """``path`` opened to read, once known to be a regular file (``FileRefused``: a folder, a FIFO,
    whose read waits for a writer forever, a device, a socket); opened first, then looked at."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, and is then refused
    except OSError as error:
        if error.errno == errno.ENXIO:  # a socket
            raise FileRefused(f"{shown(str(path))}: a socket, not a regular file") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device"
        raise FileRefused(f"{shown(str(path))}: {kind}, not a regular file")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as f:
        yield f


def read_bounded(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``: ``FileRefused`` when it is not one, or holds more
    than ``limit`` bytes (read as far as ``limit + 1``: a file still growing is refused too)."""
    with regular_file(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileRefused(f"{shown(str(path))}: larger than the {limit:,} bytes the app reads there")
    return data


def _temporary(path: Path) -> Path:
    """This process's own temporary name beside ``path`` (hidden, so no reader takes it for it)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """Write through a temporary file of this process's own, flushed to disk before it replaces
    ``path``, so that no interruption (a kill, a power cut) leaves half a file. A full disk (or
    quota, or file-size limit) is a ``DiskFull``, with ``path`` as it was and no temporary left."""
    tmp = _temporary(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        with tmp.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException as error:  # an error, or a second signal: no temporary file left behind
        tmp.unlink(missing_ok=True)
        _raise_as_full(error, path)


def append_whole(path: Path, text: str) -> None:
    """Append ``text`` to ``path``, on disk when this returns; a write cut short (a full disk) is
    taken back, so the file ends as it was, and raised as ``DiskFull``."""
    with path.open("a", newline="") as f:
        size = f.tell()
        try:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        except OSError as error:
            with contextlib.suppress(OSError):
                os.truncate(path, size)
            _raise_as_full(error, path)


def file_writer(dump: Callable[[IO[bytes]], None]) -> Callable[[Path], None]:
    """``write_atomically``'s ``write`` for a library that writes to a file object, opened here
    in Python: a full disk then surfaces as Python's ``OSError`` (given a path, ``torch.save``'s
    own C++ writer reports it as "enforce fail at inline_container.cc ... unexpected pos")."""
    return lambda tmp: _dumped(tmp, dump)


def _dumped(tmp: Path, dump: Callable[[IO[bytes]], None]) -> None:
    with tmp.open("wb") as f:
        dump(f)


_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space left, over quota, over ulimit -f


def _raise_as_full(error: BaseException, path: Path) -> NoReturn:
    """``error`` again, or a ``DiskFull`` for ``path`` when it, or an error it was raised from or
    during (a library's wrapping), is a write refused for want of room."""
    seen: list[BaseException] = []
    cause: Optional[BaseException] = error
    while cause is not None and cause not in seen and not isinstance(cause, DiskFull):
        if isinstance(cause, OSError) and cause.errno in _NO_ROOM:
            kept = f"the {path.name} there before, if any, is intact, and no part of the new one is left"
            raise DiskFull(f"{shown(str(path.parent))}: {cause.strerror} while writing {path.name}; {kept}") from None
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    raise error


def link_atomically(source: Path, path: Path) -> None:
    """Give ``source``'s file (written whole already) a second name, ``path``: no copy."""
    tmp = _temporary(path)
    tmp.unlink(missing_ok=True)
    os.link(source, tmp)
    os.replace(tmp, path)


def written_by_app(run_dir: str) -> bool:
    """True when a job of this app has held ``run_dir`` (its ``MARKER`` is there)."""
    return os.path.isfile(os.path.join(run_dir, MARKER))


def mark_run_dir(run_dir: str, command: str) -> None:
    """Say that a job of this app (``command``: app-train, ...) writes in ``run_dir``."""
    write_atomically(Path(run_dir) / MARKER, lambda tmp: tmp.write_text(f"{command}\n"))


def remove_run_artefacts(run_dir: str) -> None:
    """Delete what an earlier run of this app left in ``run_dir``, so that nothing of it mixes
    with a new one; ``RunDirTaken`` for a dir no job of this app wrote (no ``MARKER``)."""
    if not written_by_app(run_dir):
        raise RunDirTaken(f"{run_dir} holds files that no run of this app wrote ({', '.join(run_artefacts(run_dir))})")
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
