"""How the product says things to people, the one way the web app, the CLI, the email and the
report all say them: what a job cost, when its review closes.

Pure functions over the API's views (stdlib only), so the front ends import them without the
server's domain.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def cost_words(cost: Mapping[str, Any], finished: bool) -> str | None:
    """ "Cost: about $0.88 (22 model calls) of a $5.00 budget · about $0.97 for the whole job
    · plus $0.04 in 1 regeneration", the one way the page, the CLI and the email say it."""
    if "actualUsd" not in cost:
        return None
    calls = int(cost.get("modelCalls") or 0)
    words = f"{'Cost' if finished else 'Spent so far'}: about ${cost['actualUsd']:.2f} ({calls} model call"
    words += "s)" if calls != 1 else ")"
    if cost.get("budgetUsd") is not None:
        words += f" of a ${cost['budgetUsd']:.2f} budget"
    if cost.get("estimateUsd") is not None:
        words += f" · about ${cost['estimateUsd']:.2f} for the whole job"
    if cost.get("regenerations"):  # billed to the regenerations' own jobs, said here too
        count = int(cost["regenerations"])
        words += f" · plus ${float(cost.get('regeneratedUsd') or 0):.2f} in {count} regeneration"
        words += "s" if count != 1 else ""
    return words


def deadline_words(deadline: str, now: datetime | None = None) -> str:
    """A review's deadline in plain words, the same on the page and in the CLI: "Review by Thu
    26 Nov, 14:00 UTC (in 23 h)", or "... (passed 2 h ago)" once it has passed. `deadline` is
    the job view's ISO timestamp; anything else is said as it is."""
    try:
        when = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return f"Review by {deadline}"
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    seconds = (when - now).total_seconds()
    span = _span(abs(seconds))
    left = f"in {span}" if seconds > 0 else f"passed {span} ago"
    return f"Review by {when:%a} {when.day} {when:%b}, {when:%H:%M} UTC ({left})"


def _span(seconds: float) -> str:
    """ "45 min", "23 h", "3 days": rounded down, never "0 h" (under a minute is "1 min")."""
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{max(1, minutes)} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} days"
