"""Topic 1: transfer learning by freezing (blueprint 1: frozen base + new head; 2: all but last).

  ycng run topic1/transfer_freeze [--workdir DIR] [--config.blueprint=1]

A CNN is first trained on the source task (Fashion-MNIST classes 0-4). The target task is
classes 5-9 with only ``target_examples`` training images. Blueprint 1 keeps the source
convolutions frozen and trains a new dense head; blueprint 2 freezes everything but a new last
layer. Freezing is ``optax.multi_transform`` with ``set_to_zero`` on the frozen params, so they
stay bit-identical (the run checks it and reports ``*_frozen_unchanged``).
"""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np

from ycng_jax.train import classification

BLUEPRINTS = {
    # which params are copied from the source model, which are trainable on the target
    1: {"copy": ("conv_",), "trainable": ("^dense/", "^logits/")},
    2: {"copy": ("conv_", "dense/"), "trainable": ("^logits/",)},
}


def get_config() -> ml_collections.ConfigDict:
  config = classification.base_config()
  config.runner = ""
  config.model.name = "ycng_jax.models.cnn:CNN"
  config.model.kwargs.features = (32, 64)
  config.model.kwargs.convs_per_block = 1
  config.model.kwargs.batch_norm = False  # frozen layers have no moving statistics to update
  config.model.kwargs.num_classes = 5
  config.num_epochs = 3
  config.source_epochs = 3
  config.target_examples = 1000
  config.blueprint = 0  # 0: both
  config.optimizer.learning_rate = 2e-3
  config.best_monitor = ""
  return config


def _task(arrays, classes, limit=None):
  if arrays is None:
    return None
  keep = np.isin(arrays["label"], classes)
  out = {"image": arrays["image"][keep], "label": (arrays["label"][keep] - classes[0]).astype(np.int32)}
  return {k: v[:limit] for k, v in out.items()} if limit else out


def _flat(params):
  from ycng_jax.train.optim import path_name
  return {path_name(p): np.asarray(jax.device_get(x))
          for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  classification.check_config(config, get_config())
  train, val, test = classification.load_splits(config)
  source_cfg = ml_collections.ConfigDict(config.to_dict())
  source_cfg.num_epochs = config.source_epochs
  source = classification.train(
      source_cfg, os.path.join(workdir, "source"), reference_config=get_config(),
      splits=(_task(train, [0, 1, 2, 3, 4]), _task(val, [0, 1, 2, 3, 4]),
              _task(test, [0, 1, 2, 3, 4])))
  source_params = _flat(source.trainer.state.params)
  source.trainer.free()
  results = {"source_test_accuracy": source.test_metrics["test_accuracy"]}
  target = (_task(train, [5, 6, 7, 8, 9], config.target_examples), _task(val, [5, 6, 7, 8, 9]),
            _task(test, [5, 6, 7, 8, 9]))
  for blueprint in ([1, 2] if config.blueprint == 0 else [config.blueprint]):
    spec = BLUEPRINTS[blueprint]
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.trainable = spec["trainable"]
    start = {}

    def prepare(trainer, spec=spec, start=start):
      def pick(path, x):
        from ycng_jax.train.optim import path_name
        name = path_name(path)
        if name.startswith(spec["copy"]):
          return jax.device_put(source_params[name].astype(x.dtype), x.sharding)
        return x
      trainer.state = trainer.state.replace(
          params=jax.tree_util.tree_map_with_path(pick, trainer.state.params))
      start.update(_flat(trainer.state.params))

    result = classification.train(cfg, os.path.join(workdir, f"blueprint{blueprint}"),
                                  reference_config=get_config(), splits=target, prepare=prepare)
    end = _flat(result.trainer.state.params)
    result.trainer.free()
    import re
    trainable = {k for k in end if any(re.search(p, k) for p in spec["trainable"])}
    results[f"blueprint{blueprint}_test_accuracy"] = result.test_metrics["test_accuracy"]
    results[f"blueprint{blueprint}_frozen_unchanged"] = all(
        np.array_equal(start[k], end[k]) for k in end if k not in trainable)
    results[f"blueprint{blueprint}_trainable_changed"] = all(
        not np.array_equal(start[k], end[k]) for k in trainable)
  return results
