"""Dates a user writes (`log --since/--until`, `reflog expire --expire`, `REF@{DATE}`):
ISO 8601 and a few of git's relative forms.

    2026-12-01                  that day at the current time of day, local time, as git's
    2026-12-01T10:00            (or a space for T), local time
    2026-12-01T10:00+01:00      with its zone (Z for UTC)
    now, yesterday              yesterday is 24 hours ago, as git's
    2 weeks ago, 3 days 4 hours ago
    2.weeks.ago                 (dots for spaces, as git's: no quoting in `main@{2.weeks.ago}`)
                                seconds, minutes, hours, days, weeks; months and years
                                are calendar ones (the day kept, the month's last if shorter)

A date with no zone is the local time, as git reads it. A bare date is that day at the
current time of day (to the second), as git's approxidate takes it: `--since 2026-12-01`
run at 15:20 keeps the commits from 15:20 that day on, not those of its morning (git 2.39
reads it so; a time written out, `2026-12-01 00:00`, is the day's start), with now's UTC
offset: now less whole days, so a day across a summer-time change from now is cut an hour
off its clock's 15:20, as git's."""
from __future__ import annotations

import calendar
import datetime as dt
import re

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}
_PART = re.compile(r"(\d{1,9})\s*(second|minute|hour|day|week|month|year)s?")
_RELATIVE = re.compile(rf"(?:{_PART.pattern}\s*)+ago")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def clock() -> dt.datetime:
    """Now, for `parse` given none (a test sets it, as GIT_TEST_DATE_NOW sets git's)."""
    return dt.datetime.now(dt.UTC)


def parse(text: str, now: dt.datetime | None = None) -> float:
    """`text` as seconds since the epoch; ValueError naming what is accepted otherwise."""
    now = (now or clock()).astimezone()
    s = " ".join(text.strip().lower().replace(".", " ").split())  # 1.hour.ago, as git's
    if s == "now":
        return now.timestamp()
    if s == "yesterday":
        return (now - dt.timedelta(days=1)).timestamp()
    if _RELATIVE.fullmatch(s):
        seconds, months = 0, 0
        for n, unit in _PART.findall(s):
            if unit in _UNITS:
                seconds += int(n) * _UNITS[unit]
            else:
                months += int(n) * (12 if unit == "year" else 1)
        try:
            return (_months_before(now, months) - dt.timedelta(seconds=seconds)).timestamp()
        except OverflowError:
            raise ValueError("further back than year 1") from None
    try:
        when = dt.datetime.fromisoformat(text.strip())
        if _DAY.fullmatch(text.strip()):  # git's: now less whole days (now's offset kept)
            when = dt.datetime.combine(when.date(), now.time().replace(microsecond=0),
                                       now.tzinfo)
    except ValueError:
        raise ValueError("not a date: use ISO 8601 (2026-12-01, 2026-12-01T10:00, "
                         "2026-12-01T10:00+01:00) or a relative one (yesterday, "
                         "2 weeks ago)") from None
    try:
        return (when if when.tzinfo else when.astimezone()).timestamp()
    except (OverflowError, OSError, ValueError):  # a year the platform's clock cannot hold
        raise ValueError("a date this platform cannot place in time") from None


def _months_before(t: dt.datetime, months: int) -> dt.datetime:
    if months == 0:
        return t
    index = t.year * 12 + t.month - 1 - months
    year, month = divmod(index, 12)
    if year < dt.MINYEAR:
        raise ValueError("further back than year 1")
    day = min(t.day, calendar.monthrange(year, month + 1)[1])
    # on the local clock, then placed in time with that day's offset: `t`'s zone is the
    # offset of now, an hour off across a summer-time change
    return t.replace(tzinfo=None, year=year, month=month + 1, day=day).astimezone()
