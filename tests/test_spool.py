"""Records beyond the memory budget wait in a spool's temporary file and come back as received."""

from __future__ import annotations

import math
import random

from flowinst_etl.spool import BLOCK_BYTES, MemoryBudget, Spool, load


def test_spilled_records_come_back_as_received_in_any_order_while_writing_goes_on() -> None:
    spool = Spool(MemoryBudget(3 * 100))
    records = [
        {"instanceId": f"{n}-1", "graph": "x" * (n * 997 % 5000), "score": n / 7, "n": 2**70 + n}
        for n in range(2_000)
    ]
    records[500]["graph"] = "y" * (3 * BLOCK_BYTES)  # larger than a block
    records[501]["score"] = math.inf
    kept = []
    order = random.Random(7)
    for record in records:
        kept.append(spool.keep(record, 100))
        if order.random() < 0.1:  # read back while the walk still writes, as a tie repair does
            index = order.randrange(len(kept))
            assert load(kept[index]) == records[index]

    in_order = list(range(len(records)))
    shuffled = order.sample(in_order, len(in_order))
    assert all(load(kept[index]) == records[index] for index in in_order + shuffled)
    assert spool.held == 3 * 100
    spool.close()
