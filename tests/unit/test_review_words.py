"""The review deadline in plain words, as the web app and the CLI say it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.jobs.review import deadline_words

NOW = datetime(2026, 11, 25, 15, 0, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("deadline", "words"),
    [
        ("2026-11-26T14:00:00Z", "Review by Thu 26 Nov, 14:00 UTC (in 23 h)"),
        ("2026-11-25T15:45:30Z", "Review by Wed 25 Nov, 15:45 UTC (in 45 min)"),
        ("2026-11-25T15:00:20Z", "Review by Wed 25 Nov, 15:00 UTC (in 1 min)"),  # under a minute: never "0"
        ("2026-11-28T16:00:00+00:00", "Review by Sat 28 Nov, 16:00 UTC (in 3 days)"),
        ("2026-11-26T15:00:00+01:00", "Review by Thu 26 Nov, 14:00 UTC (in 23 h)"),  # said in UTC
        ("2026-11-25T13:00:00Z", "Review by Wed 25 Nov, 13:00 UTC (passed 2 h ago)"),
        ("2026-11-25T14:59:00Z", "Review by Wed 25 Nov, 14:59 UTC (passed 1 min ago)"),
        ("2026-11-25T15:00:00Z", "Review by Wed 25 Nov, 15:00 UTC (passed 1 min ago)"),  # now: it has passed
    ],
)
def test_a_deadline_is_said_as_a_day_a_time_and_how_long_is_left(deadline: str, words: str) -> None:
    assert deadline_words(deadline, now=NOW) == words


def test_a_deadline_that_is_not_a_timestamp_is_said_as_it_is() -> None:
    assert deadline_words("tomorrow", now=NOW) == "Review by tomorrow"
