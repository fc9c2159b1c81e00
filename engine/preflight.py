"""The pre-run check: what a run would refuse in its first seconds, checked before the run exists.

Why: a run created and then failed on its data leaves a FAILED parent behind for input the user has to fix
anyway; a run whose every trial fails on a model that cannot take its images says nothing. So `engine.run`
(`prunelab run`, also `--detach`), `prunelab config check` and the TUI's form (through `engine.api.check_inputs`)
call `check_inputs(config)`, one pass, before anything is written:

- the data set, read as cheaply as its format allows (`engine.data.registry.probe_dataset`: npz and idx
  headers, each file read through in chunks for its CRC and length but not kept; the labels; an image
  folder's structure and its decoded cache's header): a missing, damaged or malformed file is the DataError a
  load would raise;
- `data.train_size` / `data.test_size` against the splits (never silently capped) and the class count;
- the model: a `timm:`/`torchvision:` name the library has, and images large enough for it (built-in
  networks by their smallest side, `engine.nets.SMALLEST_SIDE`, without torch; any other model by a dry
  forward, on the meta device when it builds there);
- a device other than auto/cpu that this machine has.

Seeds and every other field are the config's own validators'. `fetch` says whether a data set not on disk yet
is downloaded (or an image folder decoded) now: a run does (a failed download is one line before the run
exists); `config check` and the form do not, and say what is left unchecked in `notes`. No torch at import,
and none at all for built-in models on the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .data.formats import DataFacts, NotFetched, fetching
from .data.registry import probe_dataset
from .errors import ConfigError, DataError, PrunelabError
from .nets import check_library_name, smallest_side

if TYPE_CHECKING:
    from .config import Config

__all__ = ["InputCheck", "check_inputs", "check_model_fits", "check_sizes"]


@dataclass(frozen=True)
class InputCheck:
    """What the pre-run check found: the data set's facts (None: not on disk yet) and what it left unchecked."""

    data: DataFacts | None
    notes: list[str] = field(default_factory=list)


def check_inputs(config: Config, fetch: bool = False) -> InputCheck:
    """Raise the one-line UserError a run of `config` would fail with in its first seconds; else what was found.

    `fetch`: download a data set that is not on disk yet (and decode an image folder the first time) rather than
    note that it is not checked yet."""
    notes: list[str] = []
    data = config.data
    with fetching(fetch):
        try:
            facts: DataFacts | None = probe_dataset(data.dataset, data.data_dir, data.options)
        except NotFetched as exc:
            facts = None
            notes.append(f"not checked yet: {exc}")
    if facts is not None:
        check_sizes(config, facts)
    check_library_name(config.model)
    check_model_fits(config.model, facts)
    if config.device not in ("auto", "cpu"):  # needs torch, so only when a device is named
        from .device import resolve_device

        resolve_device(config.device)
    return InputCheck(facts, notes)


def check_sizes(config: Config, facts: DataFacts) -> None:
    """The class-stratified subsets the config asks for exist in the data set: neither larger than its split
    (which a load would silently cap) nor smaller than its class count."""
    for key, size, have, split in (("train_size", config.data.train_size, facts.n_train, "training"),
                                   ("test_size", config.data.test_size, facts.n_test, "test")):
        if size is None:
            continue
        if size > have:
            raise ConfigError(f"data.{key} = {size} is more than the {have} {split} samples of "
                              f"{config.data.dataset}; lower it, or leave it unset for all {have}")
        if size < facts.classes:
            raise ConfigError(f"data.{key} = {size} cannot hold all {facts.classes} classes of "
                              f"{config.data.dataset} (a class-stratified subset); ask for at least {facts.classes}")


def _too_small(name: str, shape: tuple[int, ...], reason: str) -> DataError:
    return DataError(f"images of {'x'.join(map(str, shape))} (CxHxW) are too small for model {name!r} ({reason}); "
                     "use a bigger data.options.size for an image folder, or another model")


def check_model_fits(name: str, facts: DataFacts | None) -> None:
    """Images of the data set's shape go through `name`: by the built-in networks' smallest side, or by a dry
    forward of any other model (torch), on the meta device where it builds there, else on the CPU."""
    if facts is None or facts.shape is None:
        return
    side = smallest_side(name)
    if side is not None:
        if min(facts.shape[1:]) < side:
            raise _too_small(name, facts.shape, f"it takes images of at least {side}x{side}")
        return
    _dry_build(name, facts.shape, facts.classes)


def _dry_build(name: str, shape: tuple[int, int, int], classes: int) -> Any:
    import torch

    from .architectures import build_model

    for device in ("meta", "cpu"):  # meta: shapes only, no memory for the weights, no compute
        try:
            with torch.device(device):
                return build_model(name, shape, classes)
        except PrunelabError:
            raise
        except Exception:  # noqa: BLE001 -- a builder that needs real tensors (timm's .item() on meta) is
            continue  # built on the CPU; one that fails there too is the run's to report, with its traceback
    return None
