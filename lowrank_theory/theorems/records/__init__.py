"""Every check's record, one module per part of the theory; :data:`RECORDS` in docs order.

Adding a check means adding one :class:`~lowrank_theory.theorems.record.Check` to the
``RECORDS`` of the module of its concept: the registry
(:mod:`lowrank_theory.theorems.registry`) reads them all from here.
"""

from . import beyond, finite_sample, landscape, minima, retraining, schemes, two_tasks

__all__ = ["RECORDS"]


def _section(record) -> tuple[int, ...]:
    return tuple(int(part) for part in record.section.split("."))


#: Every record, ordered by the section of docs/theory.md that states its claim.
RECORDS = tuple(sorted(
    (*retraining.RECORDS, *schemes.RECORDS, *minima.RECORDS, *landscape.RECORDS,
     *two_tasks.RECORDS, *finite_sample.RECORDS, *beyond.RECORDS),
    key=_section))
