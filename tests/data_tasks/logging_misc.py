import argparse
import logging
import os
import signal
import tempfile
import threading
import time
import unittest
import warnings

from tqdm import tqdm


class Counter:
    def __init__(self):
        self.value = 0
        self._lock = threading.Lock()

    def add(self, n):
        with self._lock:
            self.value += n


def task_func(items, log_path, argv=None):
    """Process items with a progress bar, logging to a file; warn on negatives; CLI options."""
    parser = argparse.ArgumentParser(description="process")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv or [])
    logger = logging.getLogger("task")
    logger.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    handler = logging.FileHandler(log_path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    counter = Counter()
    try:
        for item in tqdm(items, desc="items", disable=False):
            if item < 0:
                warnings.warn(f"negative item {item}", UserWarning)
                logger.warning("skipping %s", item)
                continue
            logger.debug("item %s", item)
            counter.add(item * args.scale)
            time.sleep(0.001)
    finally:
        logger.removeHandler(handler)
        handler.close()
    return counter.value


class TestCases(unittest.TestCase):
    def setUp(self):
        self.log = os.path.join(tempfile.mkdtemp(), "run.log")

    def test_sum_and_log(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            total = task_func([1, -2, 3], self.log, ["--scale", "2"])
        self.assertEqual(total, 8)
        self.assertEqual(len(caught), 1)
        self.assertIn("negative item -2", str(caught[0].message))
        with open(self.log) as fh:
            text = fh.read()
        self.assertIn("WARNING task: skipping -2", text)
        self.assertNotIn("DEBUG", text)

    def test_verbose(self):
        task_func([5], self.log, ["--verbose"])
        with open(self.log) as fh:
            self.assertIn("DEBUG task: item 5", fh.read())

    def test_bad_args(self):
        with self.assertRaises(SystemExit):
            task_func([1], self.log, ["--scale", "abc"])

    def test_assert_logs(self):
        with self.assertLogs("task", level="WARNING") as cm:
            task_func([-1], self.log)
        self.assertEqual(len(cm.output), 1)

    def test_signal_handler(self):
        old = signal.signal(signal.SIGINT, lambda s, f: None)
        self.assertTrue(callable(signal.getsignal(signal.SIGINT)))
        signal.signal(signal.SIGINT, old)


if __name__ == "__main__":
    unittest.main()
