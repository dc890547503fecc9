"""The neural experiments (shallow network, vision, language) as sweeps of the one runner.

- :mod:`~lowrank_theory.simulations.neural.configs`: the configs and their ``cpu`` / ``paper`` presets (no
  torch needed);
- :mod:`~lowrank_theory.simulations.neural.shallow`, :mod:`~lowrank_theory.simulations.neural.vision`,
  :mod:`~lowrank_theory.simulations.neural.language`: the run functions from (config, seeds) to tidy rows;
- :mod:`~lowrank_theory.simulations.neural.experiments`: the registry ``EXPERIMENTS`` of
  :class:`lowrank_theory.simulations.runner.Experiment` objects.

Importing this package imports neither torch nor the numerical core.
"""

#: The package itself defines no names; import them from its modules.
__all__: list[str] = []
