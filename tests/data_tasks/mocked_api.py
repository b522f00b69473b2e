import json
import unittest
import urllib.request
from unittest.mock import MagicMock, patch


def task_func(url):
    """Fetch a JSON list of users from url; the names of the active ones, sorted."""
    with urllib.request.urlopen(url, timeout=5) as response:
        users = json.loads(response.read().decode())
    return sorted(u["name"] for u in users if u.get("active"))


class TestCases(unittest.TestCase):
    @patch("urllib.request.urlopen")
    def test_active_users(self, urlopen):
        response = MagicMock()
        response.read.return_value = json.dumps(
            [{"name": "b", "active": True}, {"name": "a", "active": True}, {"name": "c"}]
        ).encode()
        urlopen.return_value.__enter__.return_value = response
        self.assertEqual(task_func("https://api.test/users"), ["a", "b"])
        urlopen.assert_called_once_with("https://api.test/users", timeout=5)


if __name__ == "__main__":
    unittest.main()
