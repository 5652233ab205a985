"""Extraction across a Ray cluster, for datasets that outgrow one machine.

The cache is the coordination point: the driver plans which shards are missing, Ray tasks each
create the encoder from its registry name and fill their share of the shards directly in the
(shared) cache directory — every shard with its own checksummed sidecar, so concurrent writers
never collide — and the driver then assembles the result with :func:`extract` in
``overwrite="never"`` mode, which verifies every shard's checksum. A worker whose encoder or
environment would produce different numbers (another weights file, another ecgprobe version)
is detected by comparing provenance and fails loudly.

Requires ``pip install "ecgprobe[ray]"``. On a multi-node cluster, ``cache_dir`` must be on a
filesystem every node sees, and the dataset's files must be readable at the same paths.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ecgprobe.data.record import RecordSet
from ecgprobe.exceptions import ConfigError, DependencyError, EcgprobeError
from ecgprobe.extract.embeddings import Embeddings

__all__ = ["extract_distributed", "init_ray"]


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DependencyError('distributed extraction needs Ray: pip install "ecgprobe[ray]"') from None
    return ray


def init_ray(address: str | None = None) -> Any:
    """The Ray module, started (or joined at ``address``) unless it already runs, with workers
    importing this same ecgprobe (its folder on their ``PYTHONPATH``).

    Raises:
        DependencyError: Ray is not installed.
    """
    ray = _ray()
    if not ray.is_initialized():
        root = str(Path(__file__).resolve().parents[2])  # workers import this same ecgprobe
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        ray.init(
            address=address,
            ignore_reinit_error=True,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
        )
    return ray


def _work(
    encoder_name: str,
    checkpoint: str | None,
    options: dict[str, Any],
    records: RecordSet,
    layers: list[str],
    shards: list[int],
    cache_dir: str,
    expected: dict[str, Any],
    settings: dict[str, Any],
) -> int:
    """A Ray task: compute ``shards`` of the planned entries into the cache; returns records computed."""
    from ecgprobe.encoders import create_encoder
    from ecgprobe.extract import extractor as ex
    from ecgprobe.extract._compute import compute
    from ecgprobe.extract._plan import plan_work

    encoder = create_encoder(encoder_name, checkpoint=checkpoint, device=settings["device"], **options)
    provenance = ex._provenance(encoder, records, settings["window"], settings["hop"], settings["precision"])
    if provenance != expected:
        raise EcgprobeError(
            f"a Ray worker's {encoder_name} differs from the driver's (other weights, options or ecgprobe "
            "version on that node); install the same versions and paths everywhere"
        )
    digests = records.content_digests()
    plan = plan_work(
        encoder.name, provenance, layers, digests, len(records), cache_dir, settings["shard_size"], "missing"
    )
    _, n = compute(
        encoder,
        records,
        plan,
        encoder.device,
        settings["batch_size"],
        settings["window"],
        settings["hop"],
        settings["precision"],
        progress=False,
        only=set(shards),
    )
    return n


def extract_distributed(
    encoder: str,
    records: RecordSet,
    *,
    cache_dir: str | Path,
    checkpoint: str | Path | None = None,
    encoder_options: dict[str, Any] | None = None,
    layers: str | list[str] | None = None,
    n_workers: int | None = None,
    gpus_per_worker: float = 0.0,
    batch_size: int = 64,
    window: str = "official",
    hop: int | None = None,
    precision: str = "fp32",
    shard_size: int = 512,
    ray_address: str | None = None,
    progress: bool = True,
) -> Embeddings | dict[str, Embeddings]:
    """Like :func:`ecgprobe.extract`, with the shards computed by Ray tasks.

    Args:
        encoder: a registered encoder *name* (each worker creates its own instance).
        records: the records (shipped to the workers once through Ray's object store; lazy
            file-backed sets ship only their paths).
        cache_dir: the shared cache directory (required: it is how workers hand back results).
        checkpoint: the checkpoint path, readable by every worker.
        encoder_options: options of :func:`ecgprobe.create_encoder`.
        layers: as in :func:`ecgprobe.extract`.
        n_workers: parallel tasks (default: the cluster's CPUs, or GPUs when ``gpus_per_worker``).
        gpus_per_worker: GPUs per task (0: CPU tasks; workers use ``device="auto"``).
        ray_address: an existing cluster (``"auto"``, ``"ray://host:10001"``); default: start or
            join a local one.
        progress: print the summary line when assembling.

    Raises:
        DependencyError: Ray is not installed.
        EcgprobeError: a worker failed (its error is re-raised with the worker's message).
    """
    from ecgprobe.encoders import create_encoder
    from ecgprobe.extract import extractor as ex
    from ecgprobe.extract._plan import plan_work

    ray = _ray()
    if cache_dir is None:
        raise ConfigError("distributed extraction needs cache_dir: the workers write their shards there")
    options = dict(encoder_options or {})
    local = create_encoder(encoder, checkpoint=checkpoint, device="cpu", **options)
    wanted = ex._resolve_layers(local, layers)
    ex._check_args(records, batch_size, "missing", window, precision, shard_size)
    provenance = ex._provenance(local, records, window, hop, precision)
    digests = records.content_digests()
    plan = plan_work(local.name, provenance, wanted, digests, len(records), cache_dir, shard_size, "missing")
    if plan.todo:
        init_ray(ray_address)
        resources = ray.cluster_resources()
        default = (
            int(resources.get("GPU", 0) // gpus_per_worker)
            if gpus_per_worker
            else int(resources.get("CPU", 1))
        )
        workers = max(1, min(n_workers or default, len(plan.todo)))
        groups = [plan.todo[i::workers] for i in range(workers)]
        task = ray.remote(num_gpus=gpus_per_worker, num_cpus=1, max_retries=0)(_work)
        records_ref = ray.put(records)
        settings = {
            "device": "auto",
            "batch_size": batch_size,
            "window": window,
            "hop": hop,
            "precision": precision,
            "shard_size": plan.shard,
        }
        futures = [
            task.remote(
                encoder,
                None if checkpoint is None else str(checkpoint),
                options,
                records_ref,
                wanted,
                group,
                str(cache_dir),
                provenance,
                settings,
            )
            for group in groups
        ]
        try:
            ray.get(futures)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            if isinstance(cause, EcgprobeError):
                raise cause from None
            raise EcgprobeError(f"a Ray worker failed: {type(cause).__name__}: {cause}") from None
    return ex.extract(
        local,
        records,
        layers=layers,
        batch_size=batch_size,
        device="cpu",
        cache_dir=cache_dir,
        overwrite="never",
        window=window,  # type: ignore[arg-type]
        hop=hop,
        precision=precision,  # type: ignore[arg-type]
        shard_size=plan.shard,
        progress=progress,
    )
