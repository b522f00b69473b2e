import subprocess
import unittest
from unittest.mock import MagicMock, patch


def task_func(script_path, timeout=10):
    """Run a script with python; return its exit code and stdout lines; a timeout returns -1."""
    try:
        result = subprocess.run(["python", script_path], capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return -1, []
    return result.returncode, result.stdout.splitlines()


def list_processes(name):
    """Count processes whose command contains name, from `ps` via Popen."""
    proc = subprocess.Popen(["ps", "-eo", "comm"], stdout=subprocess.PIPE)
    out, _ = proc.communicate()
    return sum(1 for line in out.decode().splitlines() if name in line)


class TestCases(unittest.TestCase):
    @patch("subprocess.run")
    def test_ok(self, run):
        run.return_value = subprocess.CompletedProcess(args=[], returncode=0, stdout="a\nb\n", stderr="")
        self.assertEqual(task_func("x.py"), (0, ["a", "b"]))
        run.assert_called_once_with(["python", "x.py"], capture_output=True, text=True, timeout=10, check=False)

    @patch("subprocess.run", side_effect=subprocess.TimeoutExpired(cmd="python", timeout=1))
    def test_timeout(self, _):
        self.assertEqual(task_func("x.py", timeout=1), (-1, []))

    @patch("subprocess.Popen")
    def test_popen(self, popen):
        proc = MagicMock()
        proc.communicate.return_value = (b"COMMAND\nnginx\nbash\nnginx\n", b"")
        popen.return_value = proc
        self.assertEqual(list_processes("nginx"), 2)


if __name__ == "__main__":
    unittest.main()
