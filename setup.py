"""Metadata and dependencies are in setup.cfg; this adds the experiment configs to the package.

experiments/ stays at the top of the repository, where users read and copy them. A wheel
installs the same files as the package ``ycng_jax_experiments`` beside ``ycng_jax``, which is
where ``ycng_jax.experiments`` looks for them when it is not running from a checkout.
setup.cfg cannot say this: it cannot map a folder to a package name and also find packages.
"""

import setuptools

EXPERIMENTS = "ycng_jax_experiments"

# Topic folders have no __init__.py: they are found as namespace packages, so every .py in
# them is installed (a new topic folder needs no change here).
topics = setuptools.find_namespace_packages(where="experiments",
                                            exclude=["__pycache__", "*.__pycache__"])

setuptools.setup(
    packages=(setuptools.find_packages(include=["ycng_jax", "ycng_jax.*"]) + [EXPERIMENTS] +
              [f"{EXPERIMENTS}.{topic}" for topic in topics]),
    package_dir={EXPERIMENTS: "experiments"},
)
