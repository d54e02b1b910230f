"""Hyperparameter tuning: KerasTuner's interface on Optuna studies (``Tuner``, ``ycng tune``),
and populations of trials trained as one vmapped program (``PopulationTrainer``)."""

from ycng_jax._lazy import lazy_exports

_EXPORTS = {"Tuner": "tuner", "SearchSpace": "space", "HyperParameters": "space", "Int": "space",
            "Float": "space", "Choice": "space", "Boolean": "space", "Fixed": "space",
            "SearchSpaceError": "space", "TrialReporter": "callbacks",
            "PopulationTrainer": "population"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
