"""The shared trainer: train state, pure sharded steps, Keras-style fit and callbacks,
orbax checkpoints with exact resume, and multi-host set-up.

  from ycng_jax.train import Trainer, make_optimizer, make_classification_loss, callbacks

Names are imported lazily (PEP 562), so ``ycng_jax.train.mesh`` (used by the data
pipeline) stays cheap to import.
"""

from ycng_jax._lazy import lazy_exports

_EXPORTS = {
    "Callback": "callbacks", "EarlyStopping": "callbacks", "History": "callbacks",
    "LambdaCallback": "callbacks", "LearningRateScheduler": "callbacks",
    "ProgbarLogger": "callbacks", "ReduceLROnPlateau": "callbacks", "TerminateOnNaN": "callbacks",
    "BackupAndRestore": "checkpoint", "ModelCheckpoint": "checkpoint",
    "load_checkpoint": "checkpoint", "CSVLogger": "logging_callbacks",
    "MetricsLogger": "logging_callbacks", "TensorBoard": "logging_callbacks",
    "make_classification_loss": "losses", "make_weighted_loss": "losses", "freeze": "optim",
    "make_optimizer": "optim", "trainable_labels": "optim", "TrainState": "state",
    "make_train_step": "steps", "make_eval_step": "steps", "Trainer": "trainer",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
