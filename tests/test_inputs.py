"""What the app reads from outside the process it meets with a bound and a clear refusal, in
seconds: images that declare too many pixels or too elongated a shape, files that are not
regular files (a FIFO would hang a reader), link loops, names that are not UTF-8, a checkpoint
whose pickle is a bomb, run dirs that app-summary reads back, files --lint is given, a sweep with
no point, unbounded worker counts; a full disk ends as one paragraph with the old files intact;
and a last training batch of one image does not crash batch norm."""

import hashlib
import logging
import os
import pickle
import resource
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from app import files, images, summary
from app.checks import ConfigError
from app.configs import Corrupt, PredictConfig
from app.errors import CheckpointError, CorruptImages, DiskFull, UnreadableImage
from app.launch import check_main, compose_config
from tests.conftest import TINY, refused_in_process


def within(seconds: float, work: Callable[[], Any]) -> Any:
    """``work()``'s result, or a failure when it takes longer than ``seconds`` (it may hang: it
    runs in a daemon thread, left behind when it does)."""
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["result"] = work()
        except BaseException as error:  # handed to the test's thread
            done["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s: it hangs")
    if "error" in done:
        raise done["error"]
    return done.get("result")


def png(path: Path, size: tuple[int, int], mode: str = "1") -> Path:
    """A real PNG of ``size`` (a 1-bit one by default: 9000 x 9000 pixels in 10 MB of memory)."""
    from PIL import Image

    Image.new(mode, size).save(path)
    return path


# ------------------------------------------------------------------------------------ images
def test_a_png_that_declares_more_pixels_than_the_bound_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    big = png(tmp_path / "big.png", (9000, 9000))  # 81 M pixels: under PIL's own bound, over the app's
    started = time.perf_counter()
    bad = images.unreadable([str(big)])
    assert "declares 9000 x 9000 pixels, more than the 67,108,864 the app decodes" in bad[str(big)]
    assert time.perf_counter() - started < 5  # its header only: decoded, 81 MB of pixels and 243 MB as RGB


def test_an_image_more_elongated_than_32_to_1_is_unreadable_and_skipped_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    strip, fine = png(tmp_path / "strip.png", (1, 100_000)), png(tmp_path / "fine.png", (8, 8), "RGB")
    with caplog.at_level(logging.WARNING, logger="app.data"):
        kept, labels = images.screened([str(strip), str(fine)], [0, 1], Corrupt.skip)
    assert (kept, labels) == ([str(fine)], [1])
    assert "more elongated than 32 to 1" in caplog.text and "strip.png" in caplog.text


def test_a_picture_replaced_after_the_scan_is_refused_when_the_dataset_loads_it(tmp_path: Path) -> None:
    from app import data

    path = png(tmp_path / "x.png", (8, 8), "RGB")
    images = data.ImageFiles([str(path)], [0], data.Pixels(8, 3, 8, "bilinear", None, None))
    assert images[0][0].shape == (3, 8, 8)
    png(path, (9000, 9000))  # swapped in after the scan: a picture the scan would have refused
    with pytest.raises(UnreadableImage, match="x.png: declares 9000 x 9000"):
        images[0]


def test_a_fifo_a_device_and_a_dangling_link_named_like_images_are_unreadable_not_waited_on(tmp_path: Path) -> None:
    fifo, device, dangling = tmp_path / "fifo.png", tmp_path / "zero.png", tmp_path / "gone.png"
    os.mkfifo(fifo)  # a reader that opens it waits for a writer, forever
    device.symlink_to("/dev/zero")  # endless
    dangling.symlink_to(tmp_path / "nothing.png")
    found = files.image_files_under(str(tmp_path))
    assert found == [str(fifo), str(dangling), str(device)]
    bad = within(20, lambda: images.unreadable(found))
    assert "a FIFO, not a regular file" in bad[str(fifo)]
    assert "a device, not a regular file" in bad[str(device)]
    assert "No such file" in bad[str(dangling)]


def test_a_link_loop_in_an_image_folder_is_walked_once_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "a").mkdir()
    png(tmp_path / "a" / "1.png", (4, 4))
    (tmp_path / "a" / "up").symlink_to(tmp_path)  # a loop: a/up/a/up/...
    (tmp_path / "again").symlink_to(tmp_path / "a")  # a second link to one folder
    with caplog.at_level(logging.WARNING, logger="app.data"):
        found = within(20, lambda: files.image_files_under(str(tmp_path)))
    assert found == [str(tmp_path / "a" / "1.png")]
    assert f"{tmp_path / 'again'}: a link to a folder already walked" in caplog.text


def test_file_names_that_are_not_utf8_are_logged_escaped_without_a_logging_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = os.fsencode(tmp_path)
    with open(folder + b"/caf\xe9.png", "wb") as f:  # Latin-1 "café": not UTF-8
        f.write(b"not a png")
    name = os.fsdecode(folder + b"/caf\xe9.png")
    handler = logging.FileHandler(tmp_path / "train.log", encoding="utf-8")  # as a run's train.log
    logger = logging.getLogger("app.data")
    logger.addHandler(handler)
    try:
        images.screened([name], [0], Corrupt.skip)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert "caf\\xe9.png" in (tmp_path / "train.log").read_text()
    assert "Logging error" not in capsys.readouterr().err
    with pytest.raises(CorruptImages, match=r"caf\\xe9.png"):
        images.screened([name], [0], Corrupt.fail)


# ------------------------------------------------------------------------------- checkpoints
def zipped_pickle(path: Path, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/version", "3\n")
    return path


def test_a_checkpoint_whose_pickle_is_a_zip_bomb_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    state = {"format": files.CHECKPOINT_FORMAT, "config": {"padding": "x" * 64 * 2**20}}  # 64 MiB, 64 kB zipped
    bomb = zipped_pickle(tmp_path / "bomb.pt", pickle.dumps(state))
    assert bomb.stat().st_size < 2**20
    tracemalloc.start()
    try:
        config = files.checkpoint_config(str(bomb))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert config is None and peak < 8 * 2**20
    from app.models import load_checkpoint

    with pytest.raises(CheckpointError, match="data.pkl holds 67,"):
        load_checkpoint(str(bomb))


def test_a_checkpoint_that_is_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "last.pt")
    assert within(20, lambda: files.checkpoint_config(str(tmp_path / "last.pt"))) is None


# ------------------------------------------------------------------------------ app-summary
def run_dir(root: Path, job: int, overrides: str = "- optimizer.lr=0.1\n") -> Path:
    hydra = root / str(job) / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "overrides.yaml").write_text(overrides)
    (hydra / "hydra.yaml").write_text(f"hydra:\n  job:\n    num: {job}\n")
    (root / str(job) / "status.json").write_text('{"status": "completed", "seconds": 1.0}\n')
    (root / str(job) / "summary.json").write_text('{"best": {"val_acc": 0.5, "epoch": 1}, "final": {"val_acc": 0.5}}')
    return root / str(job)


LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}, *{a}]\n" for a, b in zip("abcd", "bcde")
)


def test_app_summary_reports_each_damaged_run_dir_in_one_line_and_keeps_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = tmp_path / "sweep"
    run_dir(sweep, 0)
    (run_dir(sweep, 1) / ".hydra" / "overrides.yaml").write_text(LAUGHS + "list: [*e]\n")  # a billion laughs, smaller
    fifo = run_dir(sweep, 2) / "status.json"
    fifo.unlink()
    os.mkfifo(fifo)  # read_text() would wait for a writer forever
    folder = run_dir(sweep, 3) / "summary.json"
    folder.unlink()
    folder.mkdir()
    (run_dir(sweep, 4) / ".hydra" / "overrides.yaml").write_bytes(b"- tags=[caf\xe9]\n")  # not UTF-8
    (run_dir(sweep, 5) / "status.json").write_text(" " * (2 * 2**20) + "{}")  # 2 MiB

    started = time.perf_counter()
    code = within(60, lambda: summary.main([str(sweep)]))
    assert time.perf_counter() - started < 30
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "1/.hydra/overrides.yaml: YAML anchors or aliases" in err
    assert "2/status.json: a FIFO, not a regular file" in err
    assert "3/summary.json: a folder, not a regular file" in err
    assert "4/.hydra/overrides.yaml: not YAML a run wrote (UnicodeDecodeError" in err
    assert "5/status.json: larger than the 1,048,576 bytes" in err
    rows = (sweep / summary.CSV).read_text().splitlines()[1:]
    assert [row.split(",")[:2] for row in rows] == [
        ["0", "completed"],
        ["1", "unreadable"],
        ["2", "incomplete"],
        ["3", "completed"],
        ["4", "unreadable"],
        ["5", "incomplete"],
    ]


# ------------------------------------------------------------------------------------ launch
def test_num_workers_and_threads_have_a_ceiling_named_at_launch() -> None:
    with pytest.raises(ConfigError) as refused:
        compose_config(["trainer.num_workers=1000", "trainer.threads=100000"])
    assert {p.key: p.rule for p in refused.value.problems} == {
        "trainer.num_workers": "0 <= value <= 64 (each loader worker is a process: 64 at most)",
        "trainer.threads": "1 <= value <= 1024 (more threads than cores only slow torch down)",
    }
    compose_config(["trainer.num_workers=64"])


def test_a_sweep_with_no_point_is_refused_naming_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = refused_in_process(
        "-m", "optimizer=glob(nomatch*)", cwd=tmp_path, monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 1 and "Traceback" not in err
    assert "optimizer=glob(nomatch*)" in err and "a sweep holds at least one point" in err
    assert check_main(["-m", "optimizer=glob(nomatch*)", "optimizer.lr=1e-3"]) == 1
    assert "a sweep holds at least one point" in capsys.readouterr().err


def test_lint_refuses_files_it_cannot_read_and_lines_it_cannot_split_in_one_line_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "binary.md").write_bytes(b"app-train \0\1\2")
    (tmp_path / "latin1.md").write_bytes(b"app-train tags=[caf\xe9]\n")
    (tmp_path / "quotes.md").write_text("# a note\napp-train 'optimizer.lr=1e-3\n")
    (tmp_path / "long.md").write_text("app-train " + "x" * 200_000 + "\n")
    (tmp_path / "folder.md").mkdir()
    names = ["missing.md", "binary.md", "latin1.md", "quotes.md", "long.md", "folder.md"]
    assert check_main(["--lint", *(str(tmp_path / n) for n in names)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "missing.md: No such file or directory" in err
    assert "binary.md: a binary file" in err
    assert "latin1.md: not UTF-8 text (byte 19" in err
    assert "quotes.md:2: refused: not a shell command line (No closing quotation)" in err
    assert "long.md:1: refused: not a shell command line (a command line of 200,010 characters" in err
    assert "folder.md: a folder, not a regular file" in err


# ----------------------------------------------------------------------- batch norm, predict
@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A ResNet-18 run (batch norm, trained) on 33 fake images in batches of 32, one epoch; its log."""
    from app.train import train

    out = tmp_path_factory.mktemp("resnet") / "run"
    overrides = ["dataset=fake", "dataset.image.size=32", "dataset.train_size=33", "dataset.val_size=4"]
    overrides += ["trainer.epochs=1", "trainer.batch_size=32", "feature_extractor=resnet18", "trainer.num_workers=0"]
    train(compose_config([*overrides, "trainer.precision=fp32"]), out)
    return out, (out / "train.log").read_text()


def test_a_last_training_batch_of_one_image_through_batch_norm_is_dropped_and_said(
    resnet_run: tuple[Path, str],
) -> None:
    out, log = resnet_run
    assert "the last batch of 1 image is dropped in each epoch: batch norm needs 2" in log
    assert (out / "checkpoints" / "last.pt").is_file()  # the epoch completed
    assert "epoch 1/1" in log


def test_the_last_batch_is_dropped_only_when_it_holds_one_image_and_batch_norm_trains() -> None:
    import torch
    from torch import nn

    from app.data import ImageTensorDataset
    from app.models import ImageClassifier
    from app.training.loaders import EpochOrder, loader, lone_last_batch

    def model(freeze: bool, head: nn.Module) -> ImageClassifier:
        return ImageClassifier(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Flatten()), head, freeze)

    assert lone_last_batch(model(False, nn.Linear(4, 2)), 33, 32)
    assert not lone_last_batch(model(False, nn.Linear(4, 2)), 34, 32)  # a last batch of 2: batch norm takes it
    assert not lone_last_batch(model(True, nn.Linear(4, 2)), 33, 32)  # a frozen extractor's stays in eval mode
    assert lone_last_batch(model(True, nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2))), 33, 32)  # the head's
    images = ImageTensorDataset(torch.zeros(33, 1, 2, 2), torch.zeros(33, dtype=torch.long), 1)
    batches = loader(images, 32, EpochOrder(33, 0, True), 0, False, drop_last=True)
    assert [len(labels) for _, labels in batches] == [32]


def test_predict_writes_names_that_are_not_utf8_escaped_and_leaves_out_what_it_cannot_read(
    resnet_run: tuple[Path, str], tmp_path: Path
) -> None:
    from app.predict import predict

    inputs = tmp_path / "in"
    inputs.mkdir()
    png(inputs / "ok.png", (40, 40), "RGB")
    png(Path(os.fsdecode(os.fsencode(inputs) + b"/caf\xe9.png")), (40, 40), "RGB")
    os.mkfifo(inputs / "fifo.png")
    png(inputs / "strip.png", (1, 40_000))
    checkpoint = str(resnet_run[0] / "checkpoints" / "best.pt")
    cfg = OmegaConf.structured(PredictConfig(checkpoint=checkpoint, input=str(inputs), num_workers=0))
    rows = within(60, lambda: predict(cfg, tmp_path / "out"))
    assert sorted(row["file"] for row in rows) == ["caf\\xe9.png", "ok.png"]
    written = (tmp_path / "out" / files.PREDICTIONS).read_text(encoding="utf-8")
    assert "caf\\xe9.png" in written and "fifo.png" not in written


# -------------------------------------------------------------------------------- full disk
@pytest.mark.cli
@pytest.mark.extended
def test_a_full_disk_at_a_checkpoint_ends_in_one_paragraph_with_the_last_checkpoint_intact(tmp_path: Path) -> None:
    from app.train import train

    out = tmp_path / "run"
    small = ["feature_extractor=mobilenet_v3_small", "classifier=small", "dataset.image.size=32"]
    small += ["trainer.precision=fp32", "trainer.num_workers=0", "dataset.train_size=8"]
    train(compose_config([*TINY, *small, "trainer.epochs=1"]), out)
    last = out / "checkpoints" / "last.pt"
    before = hashlib.sha256(last.read_bytes()).hexdigest()
    limit = last.stat().st_size // 2  # room for the small files, not for a checkpoint

    def no_room() -> None:  # in the child: writes past `limit` bytes fail with EFBIG, not a signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = [*TINY, *small, "trainer.epochs=2", "trainer.resume=auto", f"hydra.run.dir={out}"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}  # as run_cli, with the limit
    command = [sys.executable, "-m", "app.train", *args]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, preexec_fn=no_room
    )
    told = result.stdout + result.stderr  # Hydra's job logging writes to stdout
    assert result.returncode == 1, told
    assert "Traceback" not in told
    assert f"The run failed: DiskFull: {out / 'checkpoints'}: File too large while writing last.pt" in told
    assert f"hint: {DiskFull.hint}" in told
    assert hashlib.sha256(last.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.pt", "last.pt"]  # no temporary file left
    assert (out / "metrics.csv").read_text().count("\n") == 3  # the header, epoch 1, epoch 2: whole lines
