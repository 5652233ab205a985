"""Reading PyTorch Lightning checkpoints and their hydra YAML without Lightning, hydra or omegaconf.

A Lightning ``.ckpt`` saved from a module whose hyper-parameters are an omegaconf ``DictConfig``
pickles those objects (``hyper_parameters``, ``hparams_type``) next to the weights, so
``torch.load(weights_only=True)`` refuses the file. :func:`load_lightning_checkpoint` first tries
the ordinary safe load; if that is refused, it lists the file's non-tensor globals without
executing anything (``torch.serialization.get_unsafe_globals_in_checkpoint``) and, when every one
of them belongs to the configuration libraries below, loads the file again with torch's
weights-only unpickler, each of those globals bound to an *inert stand-in* class: no code of
omegaconf, Lightning or anything else runs, the configuration objects come back as opaque
placeholders, and the tensors load as usual. Any other global (``os.system``, ``builtins.eval``,
...) keeps the file refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ecgprobe.encoders.checkpoint import load_checkpoint
from ecgprobe.exceptions import CheckpointError, ConfigError

__all__ = ["INERT_GLOBAL_PREFIXES", "lightning_container", "load_lightning_checkpoint", "read_yaml_config"]

#: Globals of configuration/bookkeeping objects that Lightning checkpoints pickle beside the weights.
INERT_GLOBAL_PREFIXES: tuple[str, ...] = (
    "omegaconf.",
    "hydra.",
    "typing.",
    "pathlib.",
    "collections.",
    "enum.",
    "lightning.",
    "lightning_fabric.",
    "pytorch_lightning.",
    "clinical_ts.",
    "_operator.getitem",
    "operator.getitem",
)


class _Inert:
    """Takes any constructor arguments and state and keeps them; has no behaviour."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state

    def __repr__(self) -> str:
        return f"<inert stand-in for {type(self).__qualname__}>"


def _stand_in(full_name: str) -> type:
    module, _, name = full_name.rpartition(".")
    return type(name, (_Inert,), {"__module__": f"ecgprobe.inert.{module}"})


def load_lightning_checkpoint(path: str | Path, *, family: str) -> Any:
    """Load a Lightning checkpoint safely (see the module docstring).

    Raises:
        CheckpointError: unreadable, or holding globals outside :data:`INERT_GLOBAL_PREFIXES`.
    """
    try:
        return load_checkpoint(path, family=family)
    except CheckpointError as refused:
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:  # missing, truncated or not a torch zip: keep the original error
            raise refused from None
        if not names:
            raise
        foreign = [g for g in names if not g.startswith(INERT_GLOBAL_PREFIXES)]
        if foreign:
            raise CheckpointError(
                f"{refused} It references {foreign}, which are not configuration objects."
            ) from None
        stand_ins = [(_stand_in(g), g) for g in names]
        with torch.serialization.safe_globals(stand_ins):
            try:
                return torch.load(Path(path), map_location="cpu", weights_only=True)
            except Exception as exc:  # report as the original refusal, with the cause
                raise CheckpointError(
                    f"{refused} (retry with inert configuration objects failed: {exc})"
                ) from None


def read_yaml_config(checkpoint: str | Path, config: str | Path | None, *, family: str) -> dict[str, Any]:
    """The hydra YAML of a checkpoint: ``config`` if given, else the YAML beside the checkpoint whose
    ``trainer.pretrained`` names it, else the only YAML there; ``{}`` when there is none.

    Raises:
        ConfigError: ``config`` missing or not a YAML mapping.
    """
    import yaml

    def read(p: Path) -> dict[str, Any]:
        try:
            data = yaml.safe_load(p.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{family} config {p} cannot be read as YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{family} config {p} is not a YAML mapping")
        return data

    if config is not None:
        if not Path(config).is_file():
            raise ConfigError(
                f"{family} config {config} does not exist; pass the YAML shipped with the checkpoint"
            )
        return read(Path(config))
    ckpt = Path(checkpoint)
    candidates = sorted(ckpt.parent.glob("*.yaml")) + sorted(ckpt.parent.glob("*.yml"))
    parsed = []
    for cand in candidates:
        try:
            parsed.append(read(cand))
        except ConfigError:
            continue
    for data in parsed:
        pretrained = str(((data.get("trainer") or {}).get("pretrained")) or "")
        if pretrained and Path(pretrained).name == ckpt.name:
            return data
    return parsed[0] if len(parsed) == 1 else {}


def lightning_container(
    state_dict: dict[str, torch.Tensor],
    hyper_parameters: dict[str, Any],
    *,
    epoch: int,
    global_step: int,
    version: str,
    hparams_name: str,
) -> dict[str, Any]:
    """The container Lightning's ``Trainer.save_checkpoint`` writes, without optimizer state, for
    test checkpoints in a family's published format."""
    return {
        "epoch": epoch,
        "global_step": global_step,
        "pytorch-lightning_version": version,
        "state_dict": state_dict,
        "loops": {},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "hparams_name": hparams_name,
        "hyper_parameters": hyper_parameters,
    }
