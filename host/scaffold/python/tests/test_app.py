"""The plugin's operations, natively: the same code the component runs, with a fake worker."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import app as plugin  # noqa: E402
from mlx_plugin.testing import FakeHost, invoke  # noqa: E402


class Greet(unittest.TestCase):
    def test_greets_by_name_and_logs(self):
        host = FakeHost()
        result = invoke(plugin.app, "greet", {"name": " Ada "}, host=host)
        self.assertEqual(result.unwrap(), {"greeting": "Hello, Ada!"})
        self.assertEqual(host.messages("info"), ["greeting"])

    def test_a_blank_name_is_invalid_input(self):
        result = invoke(plugin.app, "greet", {"name": "  "})
        self.assertEqual(result.error.type_name, "EmptyName")


if __name__ == "__main__":
    unittest.main()
