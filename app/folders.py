"""The layout of an ImageFolder-style dataset on disk, read without torch (the launch check uses it)."""

import os

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def class_folders(root: str) -> list[str]:
    """The class names under ``root``: its subfolders, sorted, as torchvision's ImageFolder."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def image_files(root: str, name: str) -> list[str]:
    """The images of class ``name``, sorted by file name."""
    entries = sorted(os.scandir(os.path.join(root, name)), key=lambda e: e.name)
    return [e.path for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_SUFFIXES)]
