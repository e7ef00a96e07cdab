"""What every stateless batch source shares: which rows of a global batch a process builds."""

from __future__ import annotations


def process_rows(global_batch: int, process_index: int, process_count: int) -> slice:
    """Rows [p*B/n, (p+1)*B/n) of a global batch of B rows: process p's share when n processes feed it.

    Raises ValueError when B does not split evenly (every process must build the same number of rows)."""
    if global_batch % process_count:
        raise ValueError(f"global batch {global_batch} does not split over {process_count} processes")
    local = global_batch // process_count
    return slice(process_index * local, (process_index + 1) * local)
