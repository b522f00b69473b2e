import itertools
import unittest

import pandas as pd
from geopy.distance import geodesic


def task_func(stops):
    """Leg-by-leg geodesic distances (km, 1 decimal) of a route given as a DataFrame with
    'city', 'lat' and 'lon'; returns the legs and the total."""
    if len(stops) < 2:
        raise ValueError("a route needs at least two stops")
    if (
        not stops["lat"].between(-90, 90).all()
        or not stops["lon"].between(-180, 180).all()
    ):
        raise ValueError("coordinates out of range")
    points = list(zip(stops["lat"], stops["lon"]))
    legs = pd.DataFrame(
        {
            "from": stops["city"].iloc[:-1].to_numpy(),
            "to": stops["city"].iloc[1:].to_numpy(),
            "km": [round(geodesic(a, b).km, 1) for a, b in itertools.pairwise(points)],
        }
    )
    return legs, round(float(legs["km"].sum()), 1)


class TestCases(unittest.TestCase):
    def setUp(self):
        self.stops = pd.DataFrame(
            {
                "city": ["Oslo", "Copenhagen", "Berlin", "Paris"],
                "lat": [59.9139, 55.6761, 52.5200, 48.8566],
                "lon": [10.7522, 12.5683, 13.4050, 2.3522],
            }
        )

    def test_legs(self):
        legs, total = task_func(self.stops)
        self.assertEqual(list(legs["from"]), ["Oslo", "Copenhagen", "Berlin"])
        self.assertEqual(list(legs["to"]), ["Copenhagen", "Berlin", "Paris"])
        self.assertTrue(480 < legs["km"].iloc[0] < 490)
        self.assertTrue(350 < legs["km"].iloc[1] < 360)
        self.assertTrue(870 < legs["km"].iloc[2] < 885)
        self.assertAlmostEqual(total, legs["km"].sum(), places=1)

    def test_bad_input(self):
        with self.assertRaises(ValueError):
            task_func(self.stops.head(1))
        bad = self.stops.copy()
        bad.loc[0, "lat"] = 123.0
        with self.assertRaises(ValueError):
            task_func(bad)


if __name__ == "__main__":
    unittest.main()
