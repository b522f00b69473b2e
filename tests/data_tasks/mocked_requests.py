import unittest
from unittest.mock import MagicMock, patch

import pandas as pd
import requests


def task_func(url, params=None):
    """GET a paginated JSON API with requests; all items as a DataFrame; HTTP errors re-raised."""
    items, page = [], 1
    while True:
        resp = requests.get(url, params={**(params or {}), "page": page}, timeout=10)
        resp.raise_for_status()
        data = resp.json()
        items.extend(data["items"])
        if not data.get("next"):
            break
        page += 1
    return pd.DataFrame(items)


def fake(payload, status=200):
    resp = MagicMock()
    resp.status_code = status
    resp.json.return_value = payload
    if status >= 400:
        resp.raise_for_status.side_effect = requests.exceptions.HTTPError(f"{status} Error")
    return resp


class TestCases(unittest.TestCase):
    @patch("requests.get")
    def test_pages(self, get):
        get.side_effect = [fake({"items": [{"a": 1}], "next": True}), fake({"items": [{"a": 2}], "next": False})]
        df = task_func("https://api.test/things", {"q": "x"})
        self.assertEqual(df["a"].tolist(), [1, 2])
        self.assertEqual(get.call_count, 2)
        get.assert_called_with("https://api.test/things", params={"q": "x", "page": 2}, timeout=10)

    @patch("requests.get")
    def test_error(self, get):
        get.return_value = fake({}, status=404)
        with self.assertRaises(requests.exceptions.HTTPError):
            task_func("https://api.test/missing")

    @patch("requests.get", side_effect=requests.exceptions.ConnectionError("down"))
    def test_connection(self, _):
        with self.assertRaises(requests.exceptions.RequestException):
            task_func("https://api.test/down")

    def test_session_mock(self):
        with patch.object(requests.Session, "request") as req:
            req.return_value = fake({"ok": True})
            self.assertEqual(requests.Session().get("https://api.test/").json(), {"ok": True})


if __name__ == "__main__":
    unittest.main()
