import json
import unittest

import pandas as pd


def task_func(payload):
    """Orders JSON (a list of orders with nested customer and items) → one row per item."""
    orders = json.loads(payload)
    df = pd.json_normalize(
        orders, record_path="items", meta=["id", ["customer", "name"]], record_prefix="item."
    )
    df["item.total"] = df["item.qty"] * df["item.price"]
    return df.rename(columns={"id": "order_id", "customer.name": "customer"})


class TestCases(unittest.TestCase):
    PAYLOAD = json.dumps(
        [
            {"id": 1, "customer": {"name": "Ann"}, "items": [{"sku": "a", "qty": 2, "price": 1.5}]},
            {
                "id": 2,
                "customer": {"name": "Bo"},
                "items": [{"sku": "b", "qty": 1, "price": 4.0}, {"sku": "c", "qty": 3, "price": 2.0}],
            },
        ]
    )

    def test_rows(self):
        df = task_func(self.PAYLOAD)
        self.assertEqual(len(df), 3)
        self.assertEqual(df["item.total"].tolist(), [3.0, 4.0, 6.0])
        self.assertEqual(df.groupby("customer")["item.total"].sum().to_dict(), {"Ann": 3.0, "Bo": 10.0})

    def test_bad_json(self):
        with self.assertRaises(json.JSONDecodeError):
            task_func("{not json")


if __name__ == "__main__":
    unittest.main()
