"""Synthetic experiments of lowrank-theory: frozen configs, run functions and a resumable runner.

``lowrank_theory.simulations.experiments.EXPERIMENTS`` maps each name to an :class:`~lowrank_theory.simulations.runner.Experiment`
(a function from config and seeds to tidy rows, with quick and full sweeps);
:func:`~lowrank_theory.simulations.runner.run_experiment` runs one, and ``lowrank-theory reproduce`` runs them
all and draws the figures. Importing this package does not import the numerical core.
"""

#: The package itself defines no names; import them from its modules.
__all__: list[str] = []
