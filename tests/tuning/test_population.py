"""Populations of trials: each member ends as the same trial trained alone.

One tiny run of the real experiment (``topic9/population_fashion_mnist``, as ``ycng run`` runs
it): 4 MLPs on 4 of the 8 simulated devices for one epoch, the best 2 kept (their states sliced
off the population axis and resharded onto 2 devices), one more epoch. A survivor's final
parameters are compared with the same trial trained alone by the shared ``Trainer`` (its own
compiled step, hyperparameters as Python values, the model built at the member's dropout
rate) on one device, on the same batches.
"""

import json

import flax
import jax
import numpy as np
import pytest

from ycng_jax import experiments
from ycng_jax.data.pipeline import Loader
from ycng_jax.errors import UserError
from ycng_jax.models.cnn import CNN
from ycng_jax.models.mlp import MLP
from ycng_jax.train import classification as clf
from ycng_jax.train.losses import make_classification_loss
from ycng_jax.train.mesh import make_mesh
from ycng_jax.train.optim import make_optimizer, path_name
from ycng_jax.train.trainer import Trainer
from ycng_jax.tuning import population_search
from ycng_jax.tuning.population import PopulationTrainer, population_mesh

NAME = "topic9/population_fashion_mnist"
TINY = {"train_examples": "700", "test_examples": "200", "population": "4",
        "rung_epochs": "(1, 2)", "batch_size": "64", "eval_batch_size": "256",
        "model.kwargs.hidden": "(32,)", "search.learning_rate": "(1e-3, 2e-2)"}
# float32 rounding: the two programs differ (the alone model's dropout scale is a constant XLA
# may fold, the population's a runtime value; vmapped matmuls may sum in another order): even
# the unvmapped one-member program ends one step 5e-8 away from the Trainer's. Almost every
# weight agrees to a few 1e-8; Adam divides each gradient element by its own running
# size, so an element whose gradient is a nearly cancelled sum (an edge pixel that few images
# light) turns that rounding into a step of up to ~learning rate x its relative error. Measured
# over 20 steps: largest difference 1.2e-6, under 0.005% of the weights above 1e-7. Bounds a
# few times those; a wrong dropout mask, batch or hyperparameter moves weights by ~1e-3.
TOLERANCE, NEAR, FEW = 5e-6, 1e-7, 2e-4


@pytest.fixture(scope="module")
def search(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("population")
  metrics = experiments.run(NAME, str(workdir), TINY)
  config = experiments.apply_overrides(experiments.load_module(NAME).get_config(), dict(TINY))
  results = json.loads((workdir / "results.json").read_text())
  return workdir, config, metrics, results


def train_alone(model, member, make_loader, steps, preprocess):
  """``member``'s trial on the shared Trainer on one device: its variables (parameters and
  model state) after ``steps`` steps on the batches of ``make_loader()`` (a fresh loader
  gives the first batch for the shapes, as the population's init peeks one)."""
  trainer = Trainer(model, make_classification_loss(),
                    make_optimizer("adamw", member["learning_rate"],
                                   weight_decay=member["weight_decay"]),
                    mesh=make_mesh(1), preprocess=preprocess, seed=member["seed"])
  trainer.init(next(iter(make_loader())))
  loader = make_loader()
  for _ in range(steps):
    trainer.train_step(next(loader))
  variables = jax.device_get({"params": trainer.state.params, **trainer.state.model_state})
  trainer.free()
  return variables


def alone(config, member):
  """The member's trial of the tiny search, alone, on the runner's batches: its parameters
  by path name."""
  train, _, _ = clf.load_splits(config)

  def make_loader():
    return Loader(train, global_batch_size=config.batch_size, mesh=make_mesh(1),
                  seed=config.seed)

  model = MLP(num_classes=10, hidden=config.model.kwargs.hidden, dropout=member["dropout"])
  steps = config.rung_epochs[-1] * make_loader().steps_per_epoch
  params = train_alone(model, member, make_loader, steps,
                       clf.make_preprocess(config.image_scale))["params"]
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  return {path_name(keys): np.asarray(value) for keys, value in flat}


def saved_params(workdir, member):
  """``member``'s parameters in final_params.npz, by path name ('Dense_0/kernel')."""
  saved = np.load(workdir / "final_params.npz")
  prefix = f"member{member}/"
  return {k[len(prefix):]: saved[k] for k in saved.files if k.startswith(prefix)}


def _test_accuracy(config, workdir, member):
  """Test accuracy of ``member``'s saved parameters (final_params.npz), forward pass only."""
  params = flax.traverse_util.unflatten_dict(saved_params(workdir, member), sep="/")
  _, _, test = clf.load_splits(config)
  model = MLP(num_classes=10, hidden=config.model.kwargs.hidden, dropout=0.0)
  images = clf.make_preprocess(config.image_scale)({"image": test["image"]})["image"]
  logits = model.apply({"params": params}, images, train=False)
  return float(np.mean(np.argmax(logits, -1) == test["label"]))


def test_successive_halving_keeps_the_best_half_and_writes_its_results(search):
  workdir, config, metrics, results = search
  members = results["members"]
  assert [(r["members"], r["devices"]) for r in results["rungs"]] == [(4, 4), (2, 2)]
  first = np.array([m["objective"][0] for m in members])
  kept = sorted(np.argsort(-first, kind="stable")[:2])
  assert [m["objective"][1] is not None for m in members] == [i in kept for i in range(4)]
  assert [m["status"] for m in members] == [
      "finished" if i in kept else "dropped (rung 0)" for i in range(4)]
  best = max(kept, key=lambda i: members[i]["objective"][1])
  assert results["best"]["member"] == best and metrics == results["final"]
  assert 0.3 < metrics["test_accuracy"] <= 1.0  # 10 classes; 20 steps of training
  # Only the best member is tested: its saved parameters give the same test accuracy.
  assert metrics["test_accuracy"] == pytest.approx(_test_accuracy(config, workdir, best),
                                                   abs=1e-6)
  lines = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  assert [line.get("rung") for line in lines] == [0, 1, None] and lines[-1]["final"]
  for name in ("results.md", "population.png", "config.json", "run.json", "settings.json"):
    assert (workdir / name).stat().st_size > 0, name
  # The best member as a config that `ycng run` takes (the shared classification runner).
  best_config = experiments.load_module(str(workdir / "best_config.py")).get_config()
  clf.check_config(best_config)
  assert best_config.optimizer.learning_rate == members[best]["learning_rate"]
  assert best_config.model.kwargs.dropout == members[best]["dropout"]
  assert (best_config.seed, best_config.num_epochs) == (members[best]["seed"], 2)


def test_a_survivor_ends_as_the_same_trial_trained_alone(search):
  """The second survivor: its state moved on the population axis when the others dropped.
  (One alone run, not two: each costs two compiles, and the suite's time is short.)"""
  workdir, config, _, results = search
  member = [m for m in results["members"] if m["status"] == "finished"][1]
  ours = saved_params(workdir, member["member"])
  theirs = alone(config, member)
  assert sorted(ours) == sorted(theirs)
  diffs = np.concatenate([np.abs(ours[k] - theirs[k]).ravel() for k in sorted(ours)])
  print(f"member {member['member']} (dropout {member['dropout']:.3f}): max |population - "
        f"alone| = {diffs.max():.3g}, above {NEAR}: {np.mean(diffs > NEAR):.2%}")
  assert diffs.max() <= TOLERANCE and np.mean(diffs > NEAR) <= FEW


def test_a_workdir_belongs_to_one_search(search):
  workdir, *_ = search
  with pytest.raises(UserError, match="population: '4' -> '8'|population: 4 -> 8"):
    experiments.run(NAME, str(workdir), {**TINY, "population": "8"})


def test_diverged_members_rank_last():
  values = np.array([0.5, np.nan, 0.9, np.inf, 0.5])
  assert list(population_search._rank(values, "max")) == [2, 0, 4, 1, 3]
  assert list(population_search._rank(values, "min")) == [0, 4, 2, 1, 3]


def test_mesh_uses_the_most_devices_that_divide_the_population():
  assert [population_mesh(n).devices.size for n in (1, 2, 3, 6, 8, 12, 32)] == \
      [1, 2, 3, 6, 8, 6, 8]


def test_bad_configs_and_populations_are_clear_errors(tmp_path):
  with pytest.raises(UserError, match="rung_epochs must be increasing"):
    experiments.run(NAME, str(tmp_path), {"rung_epochs": "(2, 1)"})
  with pytest.raises(UserError, match="num_devices must be an integer in \\[0, 8\\], got 9"):
    experiments.run(NAME, str(tmp_path), {"num_devices": "9"})
  with pytest.raises(UserError, match="search.dropout must be a number in"):
    experiments.run(NAME, str(tmp_path), {"search.dropout": "(0.0, 1.0)"})
  batch = {"image": np.zeros((8, 8, 8, 1), np.uint8), "label": np.zeros(8, np.int32)}
  hparams = {"learning_rate": [1e-3] * 2, "weight_decay": [0.0] * 2, "dropout": [0.1] * 2,
             "seed": [0, 1]}
  loss = make_classification_loss()
  with pytest.raises(UserError, match="no dropout layers"):
    PopulationTrainer(MLP(hidden=(4,), dropout=0.0), loss).init(batch, hparams)
  with pytest.raises(UserError, match="takes no weight_decay"):
    PopulationTrainer(MLP(hidden=(4,)), loss, optimizer="adam").init(
        batch, {**hparams, "dropout": [0.0] * 2, "weight_decay": [0.1] * 2})
  with pytest.raises(UserError, match="a layer built at 2x the model's rate drop 1 >= 1"):
    PopulationTrainer(CNN(features=(4,), dense=8, dropout=0.25), loss,
                      dropout_base=0.25).init(batch, {**hparams, "dropout": [0.1, 0.5]})
  with pytest.raises(UserError, match="missing: \\['seed'\\]"):
    PopulationTrainer(MLP(hidden=(4,)), loss).init(
        batch, {k: v for k, v in hparams.items() if k != "seed"})


def test_a_cnn_member_with_batchnorm_and_patch_convs_is_the_same_trial_alone():
  """BatchNorm's statistics (per member under vmap), PatchConv (a batched matmul where nn.Conv
  would become a grouped convolution) and hashed dropout: member 1 of 2, six steps, against
  the Trainer with the model built at its rate; parameters and batch statistics."""
  rng = np.random.default_rng(0)
  data = {"image": rng.integers(0, 256, (96, 12, 12, 1), dtype=np.uint8),
          "label": rng.integers(0, 10, 96).astype(np.int32)}
  hparams = {"learning_rate": [3e-3, 1e-2], "weight_decay": [1e-4, 1e-3], "dropout": [0.1, 0.3],
             "seed": [4, 5]}

  def cnn(dropout):
    return CNN(num_classes=10, features=(4, 8), convs_per_block=1, dense=16, dropout=dropout,
               batch_norm=True, hashed_dropout=True, patch_convs=True)

  def batches():
    return Loader(data, global_batch_size=16, mesh=make_mesh(1), seed=0)

  preprocess = clf.make_preprocess(255.0)
  pop = PopulationTrainer(cnn(0.25), make_classification_loss(), preprocess=preprocess,
                          dropout_base=0.25, devices=jax.devices()[:2])
  pop.init(next(iter(batches())), hparams)
  loader = batches()
  for _ in range(6):
    pop.train_step(next(loader))
  ours = jax.tree.map(lambda x: np.asarray(x[1]), jax.device_get(
      {"params": pop.states.params, **pop.states.model_state}))
  pop.free()
  member = {k: v[1] for k, v in hparams.items()}
  theirs = train_alone(cnn(member["dropout"]), member, batches, 6, preprocess)
  flat = [(path_name(k), np.abs(a - b).max()) for (k, a), b in
          zip(jax.tree_util.tree_flatten_with_path(ours)[0], jax.tree.leaves(theirs))]
  assert jax.tree.structure(ours) == jax.tree.structure(theirs)
  assert any("batch_stats" in name for name, _ in flat)
  print({name: f"{d:.2g}" for name, d in flat})
  assert max(d for _, d in flat) <= TOLERANCE
