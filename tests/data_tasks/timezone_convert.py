import unittest
from datetime import datetime
from zoneinfo import ZoneInfo


def task_func(timestamp, from_tz, to_tz):
    """Convert a 'YYYY-MM-DD HH:MM:SS' wall-clock time between IANA time zones."""
    naive = datetime.strptime(timestamp, "%Y-%m-%d %H:%M:%S")
    moved = naive.replace(tzinfo=ZoneInfo(from_tz)).astimezone(ZoneInfo(to_tz))
    return moved.strftime("%Y-%m-%d %H:%M:%S %Z")


class TestCases(unittest.TestCase):
    def test_summer(self):
        self.assertEqual(
            task_func("2024-07-01 12:00:00", "America/New_York", "Asia/Tokyo"),
            "2024-07-02 01:00:00 JST",
        )

    def test_winter_dst(self):
        self.assertEqual(
            task_func("2024-01-15 09:30:00", "Europe/London", "America/Los_Angeles"),
            "2024-01-15 01:30:00 PST",
        )

    def test_unknown_zone(self):
        with self.assertRaises(Exception):
            task_func("2024-01-01 00:00:00", "Mars/Base", "UTC")


if __name__ == "__main__":
    unittest.main()
