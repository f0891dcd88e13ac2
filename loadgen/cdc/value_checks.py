"""Per-change checks of the verifier that compare by column: values, old keys and before-images,
and the split key change delivered create-first. Called on the few changes whose hashes or
flags say so (the common case never gets here); they fill the verifier's counts and examples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loadgen.cdc.attribution import old_tuple_problems
from loadgen.cdc.change import CapturedChange, image

if TYPE_CHECKING:
    from loadgen.cdc.verifier_state import VerifierState as Verifier


def _differences(
    after_l: dict[str, Any], after_c: dict[str, Any], skip: tuple[str, ...] = ()
) -> dict[str, dict[str, Any]]:
    return {
        k: {"ledger": after_l.get(k, "<absent>"), "captured": after_c.get(k, "<absent>")}
        for k in sorted(set(after_l) | set(after_c))
        if k not in skip and after_l.get(k, "<absent>") != after_c.get(k, "<absent>")
    }


def check_values(v: Verifier, li: int, ch: CapturedChange) -> None:
    """A matched change whose after-image hash differs from its ledger line's: find the columns
    that differ (none: only their order did), take out those a documented encoding limit of
    the source explains (``known_limits``), and fail ``values`` for the rest. Columns left
    out as unknown unchanged TOAST are not compared, but the column set must be the same."""
    led = v.ledger_example(li)
    after_l: dict[str, Any] = led.get("after") or {}
    uncarried = v.uncarried.get(ch.table, frozenset())
    after_l = {k: x for k, x in after_l.items() if k not in uncarried}
    after_c = image(ch.names, ch.values) or {}
    diff = _differences(after_l, after_c, ch.unknown)
    if ch.unknown and set(after_l) != set(after_c):
        diff = _differences(after_l, after_c)
    if not diff:
        return
    limited: dict[str, dict[str, Any]] = {}
    if v.limits is not None:
        for col, d in diff.items():
            lv = v.limits.deliver(ch.table, col, d["ledger"])
            if lv is not None and lv.delivered == d["captured"]:
                limited[col] = {**d, "limit": lv.limit}
    base = {
        "table": led["table"],
        "pk": led["pk"],
        "txid": led["txid"],
        "op_name": led["op_name"],
        "captured_at": v.where(ch),
    }
    real = {k: d for k, d in diff.items() if k not in limited}
    if real:
        v._fail("values", {**base, "differences": real})
    if limited:
        for d in limited.values():
            v.limit_counts[d["limit"]] = v.limit_counts.get(d["limit"], 0) + 1
        v._fail("known_limits", {**base, "differences": limited})


def check_old(v: Verifier, li: int, ch: CapturedChange) -> None:
    """Check a matched change's old key and old tuple against its ledger line."""
    captured = v.describe(ch)
    for check, example in old_tuple_problems(v.L.extras.get(li), captured):
        v._fail(check, example)


def swapped_example(v: Verifier, ch: CapturedChange, li: int) -> dict[str, Any]:
    """The ``order`` example for a key change whose create arrived before its delete (``li``:
    its ledger change, -1 when unmatched)."""
    example = {
        "table": v.L.codes.names[ch.table],
        "pk": ch.pk,
        "at": v.where(ch),
        "problem": "primary-key update: the create of the new key arrived before the"
        f" delete of the old key {ch.old_pk}",
    }
    if li >= 0:
        example["op_name"] = v.ledger_example(li)["op_name"]
    return example
