"""Deep Embedded Clustering (Xie, Girshick & Farhadi 2016) and IDEC (Guo et al. 2017).

DEC learns an embedding and cluster centres together:

1. pretrain a stacked autoencoder on reconstruction (end to end with Adam, or with SGD at
   learning rate 1 and momentum 0.9 as DEC-keras does for MNIST and Fashion-MNIST,
   optionally after the paper's greedy layer-wise denoising pretraining);
2. run k-means (ours, :mod:`ycng_jax.cluster.kmeans`) on the embedding for the centres, or
   (``init="n2d"``) cluster the embedding's UMAP manifold with a Gaussian mixture
   (:mod:`ycng_jax.cluster.manifold`, McConville et al. 2019) and start from those clusters'
   means;
3. alternate: every ``update_interval`` iterations compute the soft assignments Q of the
   whole data set and the sharpened target P; between updates minimise KL(P || Q) over
   encoder and centres on mini-batches; stop once fewer than ``tol`` of the labels
   changed between two updates.

IDEC (``idec=True``) keeps the decoder and minimises ``MSE + gamma * KL`` so the
embedding keeps the data's local structure. DEC-DA (``augment=fn``, Guo et al. 2018) feeds
every pretraining batch and every clustering input through a random augmentation, e.g.
``ycng_jax.vision.augment.flat_image_augmenter((28, 28))``; the targets P stay those of the
clean data.

Both phases train with the shared trainer's pure step (``ycng_jax.train.steps``), built in
:mod:`ycng_jax.cluster.dec_steps` from DEC's model and losses and jitted here with explicit
shardings: the batch split along the mesh's ``data`` axis, the state replicated and donated.
"""

from __future__ import annotations

import functools
import math
import os
import time
import zlib
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from ycng_jax.cluster import dec_steps
from ycng_jax.checks import check_mesh, check_seed, real_number, seed_key, whole_number
from ycng_jax.cluster.dec_checkpoint import (PhaseCheckpoints, check_checkpoint_dir, fingerprint,
                                              history_from_json, history_to_json)
from ycng_jax.cluster.kmeans import kmeans
from ycng_jax.cluster.manifold import centers_from_labels, umap_gmm
from ycng_jax.models.autoencoder import Autoencoder, greedy_pair_params, greedy_pairs
from ycng_jax.train.dispatch import DispatchLimit, add_sums
from ycng_jax.train.mesh import data_sharding, make_mesh, replicated
from ycng_jax.train.steps import jit_train_step


def _check_data(x, input_dim: int | None = None) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(
        f"DEC expects a 2-D array (samples, features), got shape {x.shape}; "
        "flatten images first, e.g. x.reshape(len(x), -1).")
  if input_dim is not None and x.shape[1] != input_dim:
    raise ValueError(f"the model was fitted on {input_dim} features but x has {x.shape[1]}.")
  x = x.astype(np.float32, copy=False)
  if not np.all(np.isfinite(x)):
    raise ValueError("x contains NaN or infinite values; clean or impute them first.")
  return x


# Compiled programs are cached by (hashable) module and optimiser kind, so a second DEC
# with the same architecture, e.g. IDEC after DEC or another seed, compiles nothing.
# Learning rate and momentum live in the optimiser *state* (optax.inject_hyperparams), so
# the optimiser built here with placeholder values updates exactly like the one whose
# ``init`` made the state.
@functools.lru_cache(maxsize=64)
def _jit_pretrain_step(module, optimizer: str, mesh: Mesh) -> Callable:
  opt = dec_steps.make_optimizer(optimizer, 0.0, 0.0)
  return jit_train_step(dec_steps.make_pretrain_step(module, opt), mesh, replicated(mesh))


@functools.lru_cache(maxsize=64)
def _jit_cluster_step(module: dec_steps.ClusteringNet, optimizer: str, gamma: float,
                      mesh: Mesh) -> Callable:
  opt = dec_steps.make_optimizer(optimizer, 0.0, 0.0)
  return jit_train_step(dec_steps.make_cluster_step(module, opt, gamma), mesh, replicated(mesh))


@functools.lru_cache(maxsize=64)
def _jit_embed(module) -> Callable:
  return jax.jit(dec_steps.make_embed_fn(module))


@functools.lru_cache(maxsize=64)
def _jit_assign(module, alpha: float) -> Callable:
  return jax.jit(dec_steps.make_assign_fn(module, alpha))


@functools.lru_cache(maxsize=64)
def _jit_pair_encode(pair) -> Callable:
  return jax.jit(lambda params, x: pair.apply(params, x, method=pair.encode))


def _public_params(params: dict) -> dict:
  """``ClusteringNet`` params as DEC's ``params_``: {"autoencoder": variables, "centers"}."""
  return {"autoencoder": {"params": params["autoencoder"]}, "centers": params["centers"]}


def _check_hidden_dims(hidden_dims: Any) -> tuple[int, ...]:
  try:
    widths = tuple(hidden_dims) if not isinstance(hidden_dims, (str, bytes)) else None
  except TypeError:
    widths = None
  if widths is None:
    raise TypeError(f"hidden_dims must be a sequence of layer widths, e.g. (500, 500, 2000, 10); "
                    f"got {hidden_dims!r}.")
  if not widths:
    raise ValueError("hidden_dims needs at least one layer width (the last is the embedding's).")
  return tuple(whole_number(f"hidden_dims[{i}]", width, 1) for i, width in enumerate(widths))


class _Batcher:
  """Fixed-size, padded, sharded mini-batches (one compiled shape for every step)."""

  def __init__(self, mesh: Mesh, batch_size: int):
    n_dev = mesh.devices.size
    if batch_size < 1 or batch_size % n_dev:
      raise ValueError(
          f"batch_size={batch_size} must be a positive multiple of the {n_dev} devices on the "
          f"mesh, e.g. {max(n_dev, batch_size // n_dev * n_dev)}.")
    self.batch_size = batch_size
    self.sharding = data_sharding(mesh)

  def put(self, *arrays: np.ndarray) -> tuple[jax.Array, ...]:
    """Pads each array's rows to ``batch_size``; the last output is the 0/1 row weight."""
    n = arrays[0].shape[0]
    pad = self.batch_size - n
    out = []
    for a in arrays:
      if pad:
        a = np.concatenate([a, np.zeros((pad, *a.shape[1:]), a.dtype)])
      out.append(a)
    weights = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    return tuple(jax.device_put(a, self.sharding) for a in (*out, weights))

  def apply(self, fn: Callable, params: Any, x: np.ndarray) -> np.ndarray:
    """Runs a jitted ``fn(params, batch)`` over all rows of ``x`` and stacks the results."""
    outs = []
    for start in range(0, x.shape[0], self.batch_size):
      chunk = x[start:start + self.batch_size]
      xb, _ = self.put(chunk)
      outs.append(np.asarray(fn(params, xb))[:chunk.shape[0]])
    return np.concatenate(outs)


class DEC:
  """Deep Embedded Clustering with a scikit-learn-like interface.

  Example::

    dec = DEC(n_clusters=10, hidden_dims=(500, 500, 2000, 10), pretrain_epochs=50).fit(x)
    dec.labels_, dec.predict(x_new), dec.transform(x_new)

  Attributes set by ``fit``: ``labels_`` (final hard assignments), ``cluster_centers_``
  (in embedding space), ``kmeans_labels_`` (k-means on the pretrained embedding: the
  autoencoder + k-means baseline), ``params_`` ({"autoencoder", "centers"}),
  ``init_labels_`` (the clusters DEC starts from: k-means', N2D's or the given ones),
  ``autoencoder_params_``, ``pretrain_history_`` (per-epoch reconstruction loss),
  ``history_`` (one dict per target update: ``iteration``, ``loss``, ``kl``,
  ``reconstruction``, ``delta_label``), ``n_iter_``, ``timings_`` (seconds per phase, in
  this process).

  With ``checkpoint_dir`` every phase saves an orbax checkpoint there at most every
  ``checkpoint_seconds`` (at epoch ends and target updates): a killed ``fit``, called again
  with the same arguments and data, resumes from the newest one and gives the same result as
  an uninterrupted run (:mod:`ycng_jax.cluster.dec_checkpoint`).
  """

  def __init__(
      self, n_clusters: int, *, hidden_dims: Sequence[int] = (500, 500, 2000, 10),
      alpha: float = 1.0, pretrain_epochs: int = 200, pretrain_batch_size: int = 256,
      pretrain_learning_rate: float = 1e-3, pretrain_optimizer: str = "adam",
      pretrain_momentum: float = 0.9, greedy_epochs: int = 0, greedy_dropout: float = 0.2,
      batch_size: int = 256, max_iter: int = 20_000, update_interval: int = 140,
      tol: float = 1e-3, optimizer: str = "sgd", learning_rate: float = 0.01,
      momentum: float = 0.9, idec: bool = False, gamma: float = 0.1, kmeans_n_init: int = 20,
      init: str = "kmeans", n2d_neighbors: int = 20,
      augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
      seed: int = 0, mesh: Mesh | None = None, verbose: bool = False,
      checkpoint_dir: str | os.PathLike | None = None, checkpoint_seconds: float = 60.0):
    self.n_clusters = whole_number("n_clusters", n_clusters, 2)
    self.hidden_dims = _check_hidden_dims(hidden_dims)
    self.alpha = real_number("alpha", alpha, 0.0, low_open=True)
    self.pretrain_epochs = whole_number("pretrain_epochs", pretrain_epochs, 0)
    self.pretrain_batch_size = whole_number("pretrain_batch_size", pretrain_batch_size, 1)
    self.pretrain_learning_rate = real_number("pretrain_learning_rate", pretrain_learning_rate,
                                              0.0, low_open=True)
    self.pretrain_optimizer = pretrain_optimizer
    self.pretrain_momentum = real_number("pretrain_momentum", pretrain_momentum, 0.0, 1.0)
    self.greedy_epochs = whole_number("greedy_epochs", greedy_epochs, 0)
    self.greedy_dropout = real_number("greedy_dropout", greedy_dropout, 0.0, 1.0)
    self.batch_size = whole_number("batch_size", batch_size, 1)
    self.max_iter = whole_number("max_iter", max_iter, 0)
    self.update_interval = whole_number("update_interval", update_interval, 1)
    self.tol = real_number("tol", tol, 0.0, 1.0)
    self.optimizer = optimizer
    self.learning_rate = real_number("learning_rate", learning_rate, 0.0, low_open=True)
    self.momentum = real_number("momentum", momentum, 0.0, 1.0)
    self.idec = idec
    self.gamma = real_number("gamma", gamma, 0.0)
    self.kmeans_n_init = whole_number("kmeans_n_init", kmeans_n_init, 1)
    if init not in ("kmeans", "n2d"):
      raise ValueError(f"init must be 'kmeans' or 'n2d' (UMAP + Gaussian mixture), got {init!r}.")
    self.init = init
    self.n2d_neighbors = whole_number("n2d_neighbors", n2d_neighbors, 2)  # UMAP's least
    if augment is not None and not callable(augment):
      raise TypeError(f"augment must be a function (key, batch) -> batch, got "
                      f"{type(augment).__name__}.")
    self.augment = augment
    self._augment = jax.jit(augment) if augment is not None else None
    self.seed = check_seed(seed)
    self.mesh = check_mesh(mesh)
    self.verbose = verbose
    for name in (optimizer, pretrain_optimizer):
      dec_steps.make_optimizer(name, learning_rate)  # fails early on an unknown name
    self.checkpoint_seconds = real_number("checkpoint_seconds (0: at every chance)",
                                          checkpoint_seconds, 0.0)
    self.checkpoint_dir = check_checkpoint_dir(checkpoint_dir)

  def _settings(self) -> dict[str, Any]:
    """What a fit's result depends on, besides the data (for checkpoint fingerprints).

    ``augment`` counts only as on or off: a function has no stable identity across
    processes, so resuming with a different augmentation is the caller's responsibility.
    """
    skip = {"mesh", "verbose", "checkpoint_dir", "checkpoint_seconds", "augment"}
    settings = {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in skip
                and not k.endswith("_")}
    return {**settings, "augment": self.augment is not None}

  def _fingerprint(self, *arrays) -> str:
    """The settings' and ``arrays``' fingerprint; not computed without checkpoints."""
    return fingerprint(self._settings(), *arrays) if self.checkpoint_dir is not None else ""

  def _phase(self, name: str, run_fingerprint: str) -> PhaseCheckpoints | None:
    if self.checkpoint_dir is None:
      return None
    return PhaseCheckpoints(self.checkpoint_dir, name, run_fingerprint, self.checkpoint_seconds)

  # --------------------------------------------------------------------------- pretraining

  def _train_reconstruction(self, module, params, x: np.ndarray, epochs: int, key: jax.Array,
                            desc: str, augment: bool = False,
                            checkpoints: PhaseCheckpoints | None = None
                            ) -> tuple[Any, list[float]]:
    """``pretrain_optimizer`` on MSE for ``epochs`` passes over ``x`` (each batch through
    ``self.augment`` if ``augment``); returns params and per-epoch losses. With
    ``checkpoints`` it resumes from the newest one and saves after epochs."""
    mesh = self._mesh
    batcher = _Batcher(mesh, self.pretrain_batch_size)
    opt = dec_steps.make_optimizer(self.pretrain_optimizer, self.pretrain_learning_rate,
                                   self.pretrain_momentum)
    state = jax.device_put(dec_steps.init_state(params["params"], opt, key), replicated(mesh))
    step = _jit_pretrain_step(module, self.pretrain_optimizer, mesh)
    rng = np.random.default_rng([self.seed, zlib_hash(desc)])
    n = x.shape[0]
    n_batches = math.ceil(n / batcher.batch_size)
    augment_key = jax.random.fold_in(key, 7)
    losses, first_epoch = [], 0
    restored = checkpoints.restore({"train": state}) if checkpoints else None
    if restored is not None:
      first_epoch, tree, meta = restored
      state, losses = tree["train"], list(meta["losses"])
      if self.verbose:
        print(f"{desc}: resuming after epoch {first_epoch} from {checkpoints.directory}")
    bar = tqdm(total=epochs, initial=first_epoch, desc=desc, disable=not self.verbose,
               leave=False)
    for epoch in range(epochs):
      order = rng.permutation(n)  # drawn for skipped epochs too: a resumed run sees the same
      if epoch < first_epoch:
        continue
      epoch_loss, limit = jnp.zeros(()), DispatchLimit()
      for b in range(n_batches):
        idx = order[b * batcher.batch_size:(b + 1) * batcher.batch_size]
        xb, w = batcher.put(x[idx])
        if augment and self._augment is not None:
          xb = self._augment(jax.random.fold_in(augment_key, epoch * n_batches + b), xb)
        state, sums = step(state, {"image": xb, "mask": w})
        epoch_loss = epoch_loss + sums["loss"]  # a sum over the real rows
        limit(epoch_loss)
      losses.append(float(epoch_loss) / n)
      if checkpoints:
        checkpoints.save(epoch + 1, {"train": state}, {"losses": losses},
                         force=epoch + 1 == epochs)
      bar.update(1)
      bar.set_postfix(loss=f"{losses[-1]:.5f}")
    bar.close()
    return {"params": state.params}, losses

  def init_autoencoder(self, input_dim: int) -> dict:
    """Untrained autoencoder parameters for this seed; also the template to restore saved ones
    (``flax.serialization.from_bytes(dec.init_autoencoder(784), data)``)."""
    init_key = jax.random.split(seed_key(self.seed), 3)[0]
    model = Autoencoder(input_dim=input_dim, hidden_dims=self.hidden_dims)
    return jax.device_get(model.init({"params": init_key}, jnp.zeros((1, input_dim))))

  def pretrain(self, x) -> dict:
    """Pretrains the autoencoder alone and returns its parameters (also kept on ``self``).

    Useful to share one pretrained autoencoder between DEC and IDEC runs:
    ``DEC(..., idec=True).fit(x, autoencoder_params=dec.pretrain(x))``.
    """
    x = _check_data(x)
    self._setup(x.shape[1])
    run = self._fingerprint(x)
    key = seed_key(self.seed)
    _, greedy_key, dropout_key = jax.random.split(key, 3)
    start = time.perf_counter()
    history: list[float] = []
    if self.greedy_epochs > 0:
      pair_params, h = [], x
      pairs = greedy_pairs(x.shape[1], self.hidden_dims, self.greedy_dropout)
      for i, pair in enumerate(pairs):
        pkey = jax.random.fold_in(greedy_key, i)
        params = pair.init({"params": pkey}, jnp.zeros((1, pair.input_dim)))
        params, losses = self._train_reconstruction(
            pair, params, h, self.greedy_epochs, jax.random.fold_in(dropout_key, i),
            f"greedy pair {i + 1}/{len(pairs)}", checkpoints=self._phase(f"greedy_{i}", run))
        history += losses
        pair_params.append(params)
        h = self._batcher.apply(_jit_pair_encode(pair), params, h)
      ae_params = greedy_pair_params(pair_params)
    else:
      ae_params = self.init_autoencoder(x.shape[1])
    ae_params, losses = self._train_reconstruction(
        self._model, ae_params, x, self.pretrain_epochs, jax.random.fold_in(dropout_key, 99),
        "pretrain autoencoder", augment=True, checkpoints=self._phase("pretrain", run))
    self.pretrain_history_ = history + losses
    self.autoencoder_params_ = jax.device_get(ae_params)
    self.timings_ = {"pretrain_s": time.perf_counter() - start}
    return self.autoencoder_params_

  # --------------------------------------------------------------------------- clustering

  def _setup(self, input_dim: int) -> None:
    self._mesh = self.mesh or make_mesh()
    self._model = Autoencoder(input_dim=input_dim, hidden_dims=self.hidden_dims)
    self._batcher = _Batcher(self._mesh, self.batch_size)
    self._embed = _jit_embed(self._model)
    self._assign = _jit_assign(self._model, self.alpha)
    self.input_dim_ = input_dim

  def fit(self, x, autoencoder_params: dict | None = None, init_labels=None) -> "DEC":
    """Pretrains (unless ``autoencoder_params`` is given), initialises, trains DEC.

    The centres start at k-means' (``init="kmeans"``), at the means of N2D's clusters
    (``init="n2d"``) or, if ``init_labels`` (one cluster id per row of ``x``) is given, at the
    means of those clusters in the pretrained embedding, e.g. to start IDEC from the
    clusters a DEC run began with: ``fit(x, dec.autoencoder_params_, dec.init_labels_)``.
    """
    x = _check_data(x)
    if x.shape[0] < self.n_clusters:
      raise ValueError(f"{x.shape[0]} samples cannot form {self.n_clusters} clusters.")
    given = []  # a start given from outside is part of what a checkpoint must match
    if autoencoder_params is None:
      autoencoder_params = self.pretrain(x)
    else:
      self._setup(x.shape[1])
      self.pretrain_history_, self.timings_ = [], {"pretrain_s": 0.0}
      self.autoencoder_params_ = autoencoder_params
      given += jax.tree.leaves(autoencoder_params)
    if init_labels is not None:
      given.append(np.asarray(init_labels))
    checkpoints = self._phase("cluster", self._fingerprint(x, *given))
    start = time.perf_counter()
    mesh, batcher = self._mesh, self._batcher
    key = jax.random.fold_in(seed_key(self.seed), 1)
    opt = dec_steps.make_optimizer(self.optimizer, self.learning_rate, self.momentum)
    net = dec_steps.ClusteringNet(input_dim=self.input_dim_, hidden_dims=self.hidden_dims,
                                  n_clusters=self.n_clusters, alpha=self.alpha,
                                  keep_reconstruction=self.idec)
    place_state = lambda centers: jax.device_put(dec_steps.init_state(
        {"autoencoder": autoencoder_params["params"], "centers": jnp.asarray(centers)}, opt, key),
        replicated(mesh))
    place_labels = lambda labels: jax.device_put(np.asarray(labels, np.int32), replicated(mesh))
    n = x.shape[0]
    restored = None
    if checkpoints:
      no_labels = place_labels(np.zeros(n))
      restored = checkpoints.restore({
          "train": place_state(np.zeros((self.n_clusters, self.hidden_dims[-1]), np.float32)),
          "labels_last": no_labels, "kmeans_labels": no_labels, "init_labels": no_labels})

    if restored is None:
      z = batcher.apply(self._embed, autoencoder_params, x)
      km = kmeans(key, z, self.n_clusters, n_init=self.kmeans_n_init, mesh=mesh)
      self.kmeans_labels_ = np.asarray(km.labels)
      self.timings_["kmeans_s"] = time.perf_counter() - start
      if init_labels is None and self.init == "n2d":
        init_labels, _ = umap_gmm(z, self.n_clusters, n_neighbors=self.n2d_neighbors,
                                  seed=self.seed, verbose=self.verbose)
        self.timings_["n2d_s"] = time.perf_counter() - start - self.timings_["kmeans_s"]
      if init_labels is None:
        init_labels, centers = self.kmeans_labels_, km.centers
      else:
        centers = centers_from_labels(z, init_labels, self.n_clusters)
        init_labels = np.asarray(init_labels, np.int32)
      self.init_labels_ = init_labels
      state = place_state(centers)
      ite, resumed_at, labels_last, history, sums = 0, -1, init_labels, [], {}
    else:  # k-means (and N2D) ran before the checkpoint: their results are in it
      ite, tree, meta = restored
      state, resumed_at = tree["train"], ite
      self.kmeans_labels_ = np.asarray(tree["kmeans_labels"])
      self.init_labels_ = np.asarray(tree["init_labels"])
      labels_last = np.asarray(tree["labels_last"])
      history, sums = history_from_json(meta["history"]), meta["sums"]
      self.timings_["kmeans_s"] = 0.0
      if self.init == "n2d" and init_labels is None:
        self.timings_["n2d_s"] = 0.0
      if self.verbose:
        print(f"{'IDEC' if self.idec else 'DEC'}: resuming at iteration {ite} from "
              f"{checkpoints.directory}")
    init_s = time.perf_counter() - start
    if checkpoints:  # saved with every checkpoint, placed once
      labels_placed = (place_labels(self.kmeans_labels_), place_labels(self.init_labels_))

    step = _jit_cluster_step(net, self.optimizer, float(self.gamma), mesh)
    assign = self._assign
    rng = np.random.default_rng([self.seed, 2])
    augment_key = jax.random.fold_in(key, 7)
    bs = batcher.batch_size
    batches_per_epoch = math.ceil(n / bs)
    for _ in range(ite // batches_per_epoch + 1):  # the batch orders of the iterations done
      order = rng.permutation(n)
    index = ite % batches_per_epoch
    p = None
    metric_names = ("loss", "kl", "reconstruction")
    limit = DispatchLimit()
    bar = tqdm(total=self.max_iter, initial=ite, desc="DEC" if not self.idec else "IDEC",
               disable=not self.verbose, leave=False)
    while True:
      if ite % self.update_interval == 0 or ite == self.max_iter:
        if checkpoints and ite > resumed_at:
          checkpoints.save(
              ite, {"train": state, "labels_last": place_labels(labels_last),
                    "kmeans_labels": labels_placed[0], "init_labels": labels_placed[1]},
              {"history": history_to_json(history),
               "sums": {k: float(v) for k, v in sums.items()}},
              force=ite == 0)
        q = batcher.apply(assign, _public_params(state.params), x)
        p = np.asarray(dec_steps.target_distribution(jnp.asarray(q)))
        labels = q.argmax(1).astype(np.int32)
        delta = float(np.mean(labels != labels_last))
        labels_last = labels
        entry = {"iteration": ite, "delta_label": delta}
        count = float(sums["count"]) if sums else 0.0
        entry.update({k: (float(sums[k]) / count if count else float("nan"))
                      for k in metric_names})
        history.append(entry)
        sums = {}
        # The first update comes before any step: no loss to show yet (history keeps NaN).
        bar.set_postfix(delta=f"{delta:.4f}", **({"loss": f"{entry['loss']:.4f}"} if count else {}))
        if (ite > 0 and delta < self.tol) or ite >= self.max_iter:
          break
      idx = order[index * bs:(index + 1) * bs]
      xb, pb, w = batcher.put(x[idx], p[idx])
      if self._augment is not None:  # DEC-DA: targets of the clean samples, augmented inputs
        xb = self._augment(jax.random.fold_in(augment_key, ite), xb)
      state, step_sums = step(state, {"image": xb, "target": pb, "mask": w})
      # device scalars: summed lazily, fetched once per target update
      sums = step_sums if not sums else add_sums(sums, step_sums)
      limit(sums)
      index += 1
      if index * bs >= n:
        order, index = rng.permutation(n), 0
      ite += 1
      bar.update(1)
    bar.close()

    self.params_ = jax.device_get(_public_params(state.params))
    self.cluster_centers_ = np.asarray(self.params_["centers"])
    self.labels_ = labels_last
    self.history_ = history
    self.n_iter_ = ite
    self.timings_["cluster_s"] = time.perf_counter() - start - init_s
    return self

  # --------------------------------------------------------------------------- inference

  def _require_fitted(self) -> None:
    if not hasattr(self, "params_"):
      raise RuntimeError("This DEC is not fitted yet; call fit(x) first.")

  def predict_proba(self, x) -> np.ndarray:
    """Soft assignments Q (n, n_clusters); rows sum to 1."""
    self._require_fitted()
    x = _check_data(x, self.input_dim_)
    return self._batcher.apply(self._assign, self.params_, x)

  def predict(self, x) -> np.ndarray:
    return self.predict_proba(x).argmax(1).astype(np.int32)

  def transform(self, x) -> np.ndarray:
    """The embedding of ``x`` under the fitted (DEC-tuned) encoder."""
    self._require_fitted()
    x = _check_data(x, self.input_dim_)
    return self._batcher.apply(self._embed, self.params_["autoencoder"], x)


def zlib_hash(text: str) -> int:
  """A stable (not per-process salted) hash, to seed per-phase numpy generators."""
  return zlib.crc32(text.encode())
