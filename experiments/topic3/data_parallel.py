"""Topic 3: data-parallel training on every device gives the accuracy of one device.

  ycng run topic3/data_parallel [--workdir DIR] [--config.param_sharding=fsdp]
  XLA_FLAGS=--xla_force_host_platform_device_count=8 ycng run topic3/data_parallel   # on CPU

The same config (global batch, seed, data order) is trained twice: on a 1-device mesh and
on a mesh over all devices (batch split along ``data``; params replicated or FSDP-sharded).
The loss is a mean over the global batch either way, so the runs agree to float tolerance.
"""

from __future__ import annotations

import os

import jax
import ml_collections

from ycng_jax.train import classification


def get_config() -> ml_collections.ConfigDict:
  config = classification.base_config()
  config.runner = ""
  config.model.name = "ycng_jax.models.mlp:MLP"
  config.model.kwargs.hidden = (256,)
  config.model.kwargs.dropout = 0.0
  config.num_epochs = 3
  config.batch_size = 128
  config.best_monitor = ""
  return config


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  classification.check_config(config, get_config())
  n = jax.device_count()
  results = {"num_devices": n}
  for label, devices in (("one_device", 1), ("all_devices", n)):
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.num_devices = devices
    metrics = classification.run(cfg, os.path.join(workdir, label), reference_config=get_config())
    results.update({f"{label}_{k}": v for k, v in metrics.items()})
  results["accuracy_difference"] = abs(results["all_devices_test_accuracy"] -
                                       results["one_device_test_accuracy"])
  return results
