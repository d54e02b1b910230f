"""Optuna's plots of a study as PNG files (optuna.visualization.matplotlib)."""

from __future__ import annotations

import pathlib
import warnings

import optuna


def write_plots(study: optuna.Study, study_dir: pathlib.Path, objective: str) -> dict[str, str]:
  """Optimisation history, parallel coordinates and parameter importances, where there is
  enough to draw (importances need two completed trials that differ in a parameter)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from optuna.visualization import matplotlib as ovm  # pylint: disable=import-outside-toplevel

  complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
  out: dict[str, str] = {}
  if not complete:
    return out
  plots_dir = study_dir / "plots"
  plots_dir.mkdir(exist_ok=True)
  draw = {"history": ovm.plot_optimization_history, "parallel": ovm.plot_parallel_coordinate,
          "importances": ovm.plot_param_importances}
  varied = {k for t in complete for k in t.params if len({str(u.params.get(k)) for u in complete}) > 1}
  for name, fn in draw.items():
    if name == "importances" and (len(complete) < 2 or not varied):
      continue
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # "experimental" warnings of optuna's matplotlib backend
      ax = fn(study, target_name=objective)
    fig = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
    fig.set_size_inches(8, 4.5)
    fig.tight_layout()
    path = plots_dir / f"{name}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    out[name] = str(path)
  return out
