"""What the Azure store sent: transactions and entities (the bench prints them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Ensure = Callable[[], Awaitable[None]]
"""Creates the store's tables and containers once; every storage call awaits it first."""


class Tally:
    def __init__(self) -> None:
        self.stats: dict[str, int] = {
            "transactions": 0, "batches": 0, "single_operations": 0,
            "entities_written": 0, "entities_deleted": 0, "marker_writes": 0,
            # Of the entities written, those that replaced one a load had read
            # (conditional on its ETag): the rest were new or replaced unseen.
            "entities_replaced": 0,
            # The users' uniqueness index (`shared.store.unique_index`): its transactions
            # (in `transactions`, not in `batches`) and the index entities they wrote.
            "index_transactions": 0, "index_writes": 0,
        }
        self.batches_by_partition: dict[str, list[int]] = {}
        """PartitionKey -> [transactions, entities] of the batched (non-delete) writes."""

    def count(self, *, batches: int = 0, singles: int = 0, written: int = 0,
              deleted: int = 0) -> None:
        self.stats["transactions"] += batches + singles
        self.stats["batches"] += batches
        self.stats["single_operations"] += singles
        self.stats["entities_written"] += written
        self.stats["entities_deleted"] += deleted

    def count_index(self, *, transactions: int = 1, entities: int = 1) -> None:
        """Writes of the uniqueness index: transactions, apart from the Emply batches."""
        self.stats["transactions"] += transactions
        self.stats["index_transactions"] += transactions
        self.stats["index_writes"] += entities
