"""One process of the multi-host test (run by test_multihost.py, not collected by pytest).

  python multihost_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR

With NUM_PROCESSES=1 it is the single-process reference on the whole batch.
"""

import os
import sys


def main(process_id: int, num_processes: int, port: int, out_dir: str):
  devices_per_process = 4 // num_processes
  os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_per_process}"
  os.environ["JAX_PLATFORMS"] = "cpu"
  import jax
  import jax.numpy as jnp
  import numpy as np
  from ycng_jax.train import distributed
  if num_processes > 1:
    assert distributed.initialize(coordinator_address=f"localhost:{port}",
                                  num_processes=num_processes, process_id=process_id)
  assert jax.process_count() == num_processes and jax.device_count() == 4

  import ycng_jax.data as ydata
  from ycng_jax.data.pipeline import Loader
  from ycng_jax.models.mlp import MLP
  from ycng_jax.train.checkpoint import BackupAndRestore
  from ycng_jax.train.losses import make_classification_loss
  from ycng_jax.train.mesh import make_mesh
  from ycng_jax.train.optim import make_optimizer
  from ycng_jax.train.trainer import Trainer

  arrays = ydata.load("digits", "train")
  arrays = {"image": arrays["image"][:256], "label": arrays["label"][:256].astype(np.int32)}
  mesh = make_mesh()
  loader = Loader(arrays, global_batch_size=64, mesh=mesh, seed=3)
  assert loader.local_batch_size == 64 // num_processes
  trainer = Trainer(MLP(hidden=(32,), dropout=0.1), make_classification_loss(),
                    make_optimizer("adam", 3e-3), mesh=mesh,
                    preprocess=lambda b: {**b, "image": b["image"].astype(jnp.float32) / 255.0})
  backup = BackupAndRestore(os.path.join(out_dir, f"backup_{num_processes}"))
  trainer.fit(loader, epochs=2, verbose=0, callbacks=[backup])
  evaluation = trainer.evaluate(Loader(arrays, global_batch_size=64, mesh=mesh, shuffle=False,
                                       num_epochs=1, drop_remainder=False))
  params = {f"p{i}": np.asarray(x.addressable_data(0))
            for i, x in enumerate(jax.tree.leaves(trainer.state.params))}
  np.savez(os.path.join(out_dir, f"params_{num_processes}_{process_id}.npz"),
           loss=evaluation["loss"], **params)
  print("done", process_id, evaluation, flush=True)


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
