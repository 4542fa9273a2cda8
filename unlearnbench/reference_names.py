"""Names of the reference rows, shared by the planner (``run/plan.py``) and the reports (``report/``),
so that neither layer imports the other for them."""

ORIGINAL = "original"
"""The reference row: the trained (and pruned) model before unlearning."""
GAP_REFERENCE = "retrain"
"""The reference the leaderboard's Gap column compares with."""
GOLD = "gold"
"""The gold reference of un-pruning: the original's procedure run on the retain set."""
UNPRUNE_GAP_REFERENCE = GOLD
"""The reference un-prune rows' Gap-gold column compares with (beside Gap, to retrain)."""
