"""Multi-host set-up: ``jax.distributed.initialize`` from flags, config or environment.

Order of precedence: explicit arguments / config, then ``YCNG_COORDINATOR_ADDRESS``,
``YCNG_NUM_PROCESSES``, ``YCNG_PROCESS_ID``, then JAX's own cluster auto-detection
(TPU VM pods, SLURM, Open MPI, GKE) when such an environment is recognised. A single
process with none of these is left alone, so laptops and CI need no set-up.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import jax
import ml_collections

ENV_COORDINATOR = "YCNG_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "YCNG_NUM_PROCESSES"
ENV_PROCESS_ID = "YCNG_PROCESS_ID"
ENV_CPU_COLLECTIVES = "YCNG_CPU_COLLECTIVES"

_initialized = False


def config_defaults() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      "coordinator_address": "",   # "host:port" of process 0; "" -> env or auto-detect
      "num_processes": 0,
      "process_id": -1,
      "cpu_collectives": "gloo",   # CPU cross-process collectives ("gloo" or "mpi")
  })


def detected_cluster() -> str | None:
  """The multi-process environment JAX can auto-configure, if we are in one."""
  env = os.environ
  if int(env.get("SLURM_NTASKS", env.get("SLURM_NPROCS", "1")) or 1) > 1 and "SLURM_JOB_ID" in env:
    return "slurm"
  hosts = env.get("TPU_WORKER_HOSTNAMES") or env.get("MEGASCALE_COORDINATOR_ADDRESS")
  if hosts and ("," in hosts or "MEGASCALE_COORDINATOR_ADDRESS" in env):
    return "tpu"
  if int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
    return "mpi"
  return None


def initialize(config: Mapping[str, Any] | None = None, *, coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None) -> bool:
  """Initialise multi-process JAX if asked for or detected; returns whether it did.

  Must run before any JAX computation. Idempotent.
  """
  global _initialized
  if _initialized or jax.distributed.is_initialized():
    return True
  config = dict(config or {})
  coordinator_address = (coordinator_address or config.get("coordinator_address") or
                         os.environ.get(ENV_COORDINATOR) or None)
  num_processes = (num_processes or config.get("num_processes") or
                   int(os.environ.get(ENV_NUM_PROCESSES, "0")) or None)
  if process_id is None:
    pid = config.get("process_id", -1)
    process_id = pid if pid is not None and pid >= 0 else (
        int(os.environ[ENV_PROCESS_ID]) if ENV_PROCESS_ID in os.environ else None)
  collectives = config.get("cpu_collectives") or os.environ.get(ENV_CPU_COLLECTIVES, "gloo")
  if coordinator_address:
    if num_processes is None or process_id is None:
      raise ValueError(f"coordinator_address={coordinator_address!r} also needs num_processes and "
                       f"process_id (flags, config.distributed.* or ${ENV_NUM_PROCESSES} / "
                       f"${ENV_PROCESS_ID})")
    if not 0 <= process_id < num_processes:
      raise ValueError(f"process_id={process_id} must be in [0, {num_processes})")
    _enable_cpu_collectives(collectives)
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  elif detected_cluster() is not None:
    _enable_cpu_collectives(collectives)
    jax.distributed.initialize()
  else:
    return False
  _initialized = True
  return True


def _enable_cpu_collectives(implementation: str):
  """CPU devices in different processes need a collectives library (gloo ships with jaxlib)."""
  try:
    jax.config.update("jax_cpu_collectives_implementation", implementation)
  except (AttributeError, ValueError) as e:  # option renamed/removed in a future JAX
    raise RuntimeError(f"cannot select CPU collectives {implementation!r}: {e}") from e
