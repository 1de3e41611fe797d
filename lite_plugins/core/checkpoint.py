"""The one LITE checkpoint format every adapter loads, and atomic writes.

A checkpoint is a folder::

    config.json          {"model_type": "lite", "lite_format_version": 1, "encoder": {...},
                          "scorer": {...}, "token_budget": {...} | null, ...}
    model.safetensors    every weight (keys "encoder.*", "scorer.*"); no pickle, ever
    tokenizer files      whatever the encoder's tokenizer saves (so AutoTokenizer loads the folder)
    README.md            model card

``config.json`` is also a valid transformers config (``model_type="lite"``), which is how a stock
sentence-transformers ``CrossEncoder(path)`` loads it once ``lite_plugins`` is imported.
Unknown top-level keys are kept and written back, so adapters can store their own settings.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MODEL_TYPE = "lite"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A folder is not a (readable) LITE checkpoint."""


@contextmanager
def atomic_directory(target: str | Path, overwrite: bool = True, carry_over: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success swap it in for ``target``.

    An interrupted write leaves only a hidden ``.name.tmp-*`` folder beside an intact old ``target``.
    The swap is two renames; between them (microseconds) the old folder sits at ``.name.old-*``,
    which :func:`resolve_checkpoint_dir` also accepts, so a crash there loses nothing either.
    ``carry_over``: entries of the old ``target`` that were not written anew (a trainer's ``checkpoint-N``
    folders, a user's files) move into the new folder as hard links (copies where links fail), as they were.
    """
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:8]
    temporary = target.parent / f".{target.name}.tmp-{token}"
    temporary.mkdir()
    try:
        yield temporary
        for path in temporary.rglob("*"):
            if path.is_file():
                give_default_file_mode(path)
        _fsync_tree(temporary)
        if carry_over and target.is_dir():
            for other in target.iterdir():  # hidden ones too (.git): the old folder is deleted after the swap
                if not os.path.lexists(temporary / other.name):
                    _link_tree(other, temporary / other.name)
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} exists; pass overwrite=True to replace it")
            previous = target.parent / f".{target.name}.old-{token}"
            os.replace(target, previous)
            os.replace(temporary, target)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def default_file_mode() -> int:
    """The mode a new file gets from ``open()``: 0o666 without the process umask."""
    try:  # Linux: read the umask without changing it (os.umask is a process-wide set)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def give_default_file_mode(path: str | Path) -> None:
    """Undo safetensors' owner-only 0600 files (safetensors >= 0.8.1 writes through a 0600 temporary file).

    Without it, a checkpoint saved by one user (or in a container build) cannot be read by another,
    while its config.json can: a confusing "file not found" for the weights.
    """
    if os.name == "posix":
        os.chmod(path, default_file_mode())


def _link_tree(source: Path, destination: Path) -> None:
    """``source`` at ``destination`` as hard links (no data copied), symlinks as symlinks; copies if links fail."""
    if source.is_symlink():
        destination.symlink_to(source.readlink())
    elif source.is_dir():
        destination.mkdir()
        shutil.copystat(source, destination)
        for child in source.iterdir():
            _link_tree(child, destination / child.name)
    else:
        try:
            os.link(source, destination)
        except OSError:
            shutil.copy2(source, destination)


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def check_no_foreign_model(directory: str | Path) -> None:
    """Refuse a file, or a folder whose ``config.json`` belongs to a model that is not LITE (other files may stay)."""
    directory = Path(directory)
    if directory.is_file():
        raise FileExistsError(f"{directory} is a file; a LITE checkpoint is written as a folder")
    existing = directory / CONFIG_NAME
    if existing.is_file() and not is_lite_checkpoint(directory):
        raise FileExistsError(
            f"{existing} belongs to a model that is not LITE; refusing to overwrite it. Choose another folder."
        )


def check_replaceable(target: str | Path) -> None:
    """Refuse to replace a non-empty folder that is not a LITE checkpoint (it may hold someone's work)."""
    target = Path(target)
    if target.is_file():
        raise FileExistsError(f"{target} is a file; a LITE checkpoint is written as a folder")
    if target.is_dir() and any(target.iterdir()) and not is_lite_checkpoint(target):
        raise FileExistsError(
            f"{target} is a non-empty folder that is not a LITE checkpoint; refusing to replace it. "
            "Choose an empty or new folder."
        )


def is_lite_checkpoint(directory: str | Path) -> bool:
    try:
        return read_config(directory).get("model_type") == MODEL_TYPE
    except (CheckpointError, OSError):
        return False


def read_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory} has no {CONFIG_NAME}: it is not a LITE checkpoint")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}); the checkpoint is corrupt") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return config


def validate_config(config: dict[str, Any], directory: str | Path) -> dict[str, Any]:
    """Check that a config describes a LITE model this version can load; say what it is otherwise."""
    model_type = config.get("model_type")
    if model_type != MODEL_TYPE:
        hint = (
            f" It looks like a plain '{model_type}' model: start a LITE model from it with "
            f"LiteModel.from_encoder({str(directory)!r})."
            if model_type
            else ""
        )
        raise CheckpointError(f"{directory} is not a LITE checkpoint (model_type={model_type!r}).{hint}")
    version = config.get("lite_format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{directory} uses LITE checkpoint format {version!r}; this lite_plugins reads up to "
            f"{FORMAT_VERSION}. Upgrade lite_plugins."
        )
    for key in ("encoder", "scorer"):
        if not isinstance(config.get(key), dict) or "type" not in config[key]:
            raise CheckpointError(f"{directory}/{CONFIG_NAME} lacks a valid '{key}' section")
    return config


def write_config(directory: str | Path, config: dict[str, Any]) -> None:
    (Path(directory) / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def recover_interrupted_swap(target: str | Path) -> bool:
    """Put back the previous folder that an :func:`atomic_directory` swap killed between its renames left.

    Such a swap leaves ``target`` missing and the old folder at ``.name.old-*``; readers of any folder
    written by :func:`atomic_directory` (checkpoints, indexes) call this when ``target`` is missing.
    Returns True when a folder was recovered.
    """
    path = Path(target)
    if path.exists() or not path.parent.is_dir():
        return False
    leftovers = sorted(path.parent.glob(f".{path.name}.old-*"))
    if not leftovers:
        return False
    logger.warning("recovering %s from an interrupted write (%s)", path, leftovers[-1].name)
    try:
        os.replace(leftovers[-1], path)
    except OSError:  # another reader recovered it first, or a writer finished its swap meanwhile
        return path.is_dir()
    return True


def looks_like_local_path(name_or_path: str | Path) -> bool:
    """A path a Hub id can never be (absolute, relative with ./ or ~, or with more than one '/')."""
    name = str(name_or_path)
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def resolve_checkpoint_dir(name_or_path: str | Path, revision: str | None = None) -> Path:
    """A local folder as is; otherwise a Hugging Face Hub id, downloaded (needs the internet)."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{path} is a file; a LITE checkpoint is a folder")
    if recover_interrupted_swap(path):
        return path
    if looks_like_local_path(name_or_path):
        raise CheckpointError(f"no checkpoint folder at {path}")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name_or_path), revision=revision))
    except Exception as error:  # offline, unknown repo, auth: say both things that were tried
        raise CheckpointError(
            f"{name_or_path!r} is not a local folder, and downloading it from the Hugging Face Hub failed: {error}"
        ) from error
