import unittest
from datetime import date, datetime, timedelta

import holidays
import pytz
from dateutil import parser, rrule
from dateutil.relativedelta import relativedelta


def task_func(date_str, from_tz, to_tz, country="US"):
    """Parse a date string in from_tz, convert to to_tz; next 3 business days skipping holidays."""
    naive = parser.parse(date_str)
    src = pytz.timezone(from_tz)
    local = src.localize(naive) if naive.tzinfo is None else naive.astimezone(src)
    converted = local.astimezone(pytz.timezone(to_tz))
    country_holidays = holidays.country_holidays(country, years=converted.year)
    days = []
    day = converted.date()
    while len(days) < 3:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in country_holidays:
            days.append(day)
    next_month = (converted + relativedelta(months=1)).strftime("%Y-%m-%d")
    fridays = list(rrule.rrule(rrule.WEEKLY, byweekday=rrule.FR, count=2, dtstart=naive))
    return converted.strftime("%Y-%m-%d %H:%M:%S %Z%z"), days, next_month, fridays


class TestCases(unittest.TestCase):
    def test_convert_dst(self):
        out, _, _, _ = task_func("2024-07-03 18:30:00", "America/New_York", "Asia/Tokyo")
        self.assertEqual(out, "2024-07-04 07:30:00 JST+0900")
        out, _, _, _ = task_func("2024-01-03 18:30", "America/New_York", "Europe/London")
        self.assertEqual(out, "2024-01-03 23:30:00 GMT+0000")

    def test_holidays(self):
        _, days, _, _ = task_func("2024-07-03 09:00", "UTC", "UTC")
        self.assertEqual(days, [date(2024, 7, 5), date(2024, 7, 8), date(2024, 7, 9)])
        self.assertIn(date(2024, 12, 25), holidays.US(years=2024))
        self.assertEqual(holidays.DE(years=2024).get(date(2024, 10, 3)), "Tag der Deutschen Einheit")

    def test_relative(self):
        _, _, nxt, fridays = task_func("Jan 31 2024 10am", "UTC", "UTC")
        self.assertEqual(nxt, "2024-02-29")
        self.assertEqual(fridays[0], datetime(2024, 2, 2, 10, 0))

    def test_aware_input(self):
        out, _, _, _ = task_func("2024-03-10T12:00:00+00:00", "UTC", "US/Pacific")
        self.assertTrue(out.endswith("PDT-0700"))


if __name__ == "__main__":
    unittest.main()
