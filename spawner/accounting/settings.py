"""`GpuUsage`: where the GPU-hours record is kept, and the budgets. Read by the hub (its
spawner records holds and enforces budgets) and by the operations service (looks, idle
time, the Usage view), both from the same configuration."""

from __future__ import annotations

from pathlib import Path

from traitlets import Bool, Dict, List, TraitError, Unicode, validate
from traitlets.config import Configurable

from .budgets import Budget, parse_budgets

USAGE_FILE = "gpu-usage.sqlite"


class GpuUsage(Configurable):
    enabled = Bool(
        True,
        config=True,
        help="""Record every GPU hold (who, which GPU, when, how much of it idle, why it
        ended) for the Usage view, the users' own figures and budgets.""",
    )
    db_url = Unicode(
        "",
        config=True,
        help="""SQLAlchemy URL of the GPU usage record. Default: SQLite, gpu-usage.sqlite in
        the hub's data directory. A larger site: PostgreSQL, e.g.
        "postgresql://cudaspawner:secret@db.example.org/cudaspawner" (the same URL for the
        hub and its operations service; the table is created on first use).""",
    )
    budgets = List(
        Dict(),
        config=True,
        help="""GPU-hour budgets, per user or per group and period, e.g.
        [{"group": "vision", "gpu_hours": 100, "period": "month", "warn_at": 0.8,
          "hard": True}, {"user": "ann", "gpu_hours": 10, "period": "week", "hard": False}].
        At `warn_at` of the budget the spawn form and the spawn page warn; over a hard
        budget a new GPU server is refused (409) with what was used, the limit and when it
        resets; a soft one only warns. Running servers are stopped only with
        `stop_over_budget`.
        Periods are UTC days, weeks (from Monday) and months.""",
    )

    stop_over_budget = Bool(
        False,
        config=True,
        help="""Also stop running GPU servers whose user is over a hard budget (at the
        operations service's next look; the user's files stay). Off: a budget only refuses
        new GPU servers.""",
    )

    @validate("budgets")
    def _validate_budgets(self, proposal):
        try:
            parse_budgets(list(proposal.value))
        except ValueError as e:
            raise TraitError(f"GpuUsage.budgets: {e}") from None
        return proposal.value

    def parsed_budgets(self) -> list[Budget]:
        return parse_budgets(list(self.budgets))

    def url(self, data_dir: Path) -> str:
        """The record's URL: the admin's, or SQLite in the data directory."""
        return self.db_url or f"sqlite:///{Path(data_dir).resolve() / USAGE_FILE}"
