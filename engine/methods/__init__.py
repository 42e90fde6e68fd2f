"""Decoding methods: each proposes a candidate trie per step; all share one verify path (engine.generate)."""
from __future__ import annotations

from engine.methods.base import Method
from engine.methods.drafting import D2SD_K, TREE_BUDGET, D2SD, DDTree, DFlash, Naive
from engine.methods.lookup import MAX_GAMMA, PromptLookup
from engine.methods.plain import Plain

METHODS = ["auto", "ar", "lookup", "ardraft", "dflash", "naive", "ddtree", "d2sd"]
DRAFTER_METHODS = {"dflash", "naive", "ddtree", "d2sd"}


def make_method(name: str, target=None, *, gamma: int | None = None, k: int | None = None, budget: int | None = None,
                drafter=None, vp_drafter=None, draft_model=None, p_min: float = 0.0, curve=None,
                reuse: int = 0, alt: bool | None = None) -> Method:
    """A plain constructor: engine.ready_method finds the target's drafters and cost curve and keeps
    the method. `drafter` (drafter 1) and `vp_drafter` are engine.drafters.Drafter objects; without a
    VP drafter d2sd reuses drafter 1 in its place. Drafter methods switch the target to capture their
    features (built without that, they would read the wrong layers, so every builder would repeat it).
    `auto` needs the target's verify cost `curve` and uses the drafters when given. `reuse`: d2sd with
    drafter 1 in the VP drafter's place (the ablation a public DFlash checkpoint allows). `alt`: whether
    d2sd's VP rows re-anchor on drafter 1's runner-up tokens or at the paper's rejection points; None
    keeps `D2SD`'s default (runner-ups). `k` None: each method's own row count (d2sd 8, naive and auto 4)."""
    if name == "ar":
        return Plain()
    if name == "lookup":
        # 4 pays on CPUs (t(4) ~ 2.2 t(1)); GPUs afford more, up to the target's batch less the anchor
        return PromptLookup(gamma=gamma or 4, cap=target.n_batch - 1 if target is not None else MAX_GAMMA)
    if name == "ardraft":
        from engine.methods.ardraft import ARDraft

        return ARDraft.load(target, draft_model, gamma=gamma or 4, p_min=p_min)
    if name not in DRAFTER_METHODS | {"auto"}:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    if alt is not None and name != "d2sd":
        raise ValueError(f"alt (runner-up re-anchoring) is a d2sd option, not one of {name!r}")
    if reuse:
        vp_drafter = None
    if name == "auto" and curve is None:
        raise ValueError("auto needs the target's verify cost curve (engine.ready_method reads or measures it)")
    if drafter is None and name != "auto":
        raise ValueError(f"method {name!r} needs a drafter for this target (none is installed)")
    if vp_drafter is not None and vp_drafter.config.target_layer_ids != drafter.config.target_layer_ids:
        raise ValueError("drafter 1 and the VP drafter read different target layers")
    if target is not None and drafter is not None:
        target.set_capture_layers(drafter.config.target_layer_ids)
    rows = {} if k is None else {"k": k}
    if name == "auto":
        from engine.methods.auto import Auto

        return Auto(curve, drafter, vp_drafter, gamma=gamma, **rows)
    if name == "dflash":
        return DFlash(drafter, gamma, budget)
    if name == "naive":
        return Naive(drafter, gamma, budget=budget, **rows)
    if name == "ddtree":
        return DDTree(drafter, gamma, budget or TREE_BUDGET)
    return D2SD(drafter, vp_drafter, gamma, budget=budget or TREE_BUDGET, **rows,
                **({} if alt is None else {"alt": bool(alt)}))
