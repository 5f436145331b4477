"""The contract plugin's operations (plugins/CONTRACT.md), natively: the same code the
component runs, the worker faked by `FakeHost`. The real runtime runs them in
`tests/tests/e2e/contract.rs`."""

import importlib.util
import os
import socket
import tempfile
import threading
import unittest

from mlx_plugin import UNCAUGHT_EXCEPTION
from mlx_plugin.testing import FakeHost, invoke

from tests import PYTHON_DIR

# Loaded under a name of its own: the features plugin's main module is `app` too.
_spec = importlib.util.spec_from_file_location(
    "contract_app", os.path.join(PYTHON_DIR, "contract", "app.py")
)
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)
app = contract.app


class Describe(unittest.TestCase):
    def test_offers_exactly_the_contract_operations(self):
        self.assertEqual(app.name, "contract-python")
        self.assertEqual(
            sorted(app.operations),
            sorted(
                [
                    "echo",
                    "fail",
                    "throw",
                    "checkpoint",
                    "wait_for_cancel",
                    "config",
                    "secret",
                    "log",
                    "connect",
                    "read_file",
                ]
            ),
        )

    def test_every_input_schema_rejects_unknown_properties(self):
        for op in app.operations.values():
            self.assertIs(op.input_schema.get("additionalProperties"), False, op.name)
        error = invoke(app, "echo", {"value": 1, "extra": 2}).error
        self.assertEqual((error.kind, error.type_name), ("invalid_input", "InvalidInput"))


class Echo(unittest.TestCase):
    def test_returns_value_times_and_attempt(self):
        out = invoke(app, "echo", {"value": {"a": [1, None]}}, attempt=3).unwrap()
        self.assertEqual(out, {"value": {"a": [1, None]}, "times": 1, "attempt": 3})
        out = invoke(app, "echo", {"value": None, "times": 10}).unwrap()
        self.assertEqual(out, {"value": None, "times": 10, "attempt": 1})

    def test_value_is_required_and_times_bounded(self):
        for bad in ({}, {"value": 1, "times": 0}, {"value": 1, "times": 11}, {"value": 1, "times": "2"}):
            error = invoke(app, "echo", bad).error
            self.assertEqual(error.kind, "invalid_input", bad)


class Fail(unittest.TestCase):
    def test_each_kind_is_the_sdk_error_of_that_kind(self):
        for kind in ("invalid_input", "retryable", "permanent"):
            error = invoke(
                app,
                "fail",
                {"kind": kind, "type": "Boom", "message": "it broke", "details": {"n": 1}},
            ).error
            self.assertEqual(
                (error.kind, error.type_name, error.message, error.details),
                (kind, "Boom", "it broke", {"n": 1}),
            )

    def test_details_are_optional(self):
        error = invoke(app, "fail", {"kind": "permanent", "type": "T", "message": "m"}).error
        self.assertIsNone(error.details)
        self.assertIsNone(error.details_json())

    def test_an_unknown_kind_is_invalid_input(self):
        error = invoke(app, "fail", {"kind": "fatal", "type": "T", "message": "m"}).error
        self.assertEqual((error.kind, error.type_name), ("invalid_input", "InvalidInput"))


class Throw(unittest.TestCase):
    def test_an_uncaught_value_error_is_permanent_with_its_traceback(self):
        error = invoke(app, "throw", {"message": "bad value"}).error
        self.assertEqual((error.kind, error.type_name), ("permanent", UNCAUGHT_EXCEPTION))
        self.assertEqual(error.message, "ValueError: bad value")
        self.assertEqual(error.details["exception"], "ValueError")
        self.assertIn("raise ValueError", error.details["traceback"])


class Checkpoint(unittest.TestCase):
    def test_a_first_attempt_heartbeats_every_step(self):
        host = FakeHost()
        out = invoke(app, "checkpoint", {"steps": 3}, host=host).unwrap()
        self.assertEqual(out, {"resumed_from": 0, "done": 3, "attempt": 1})
        self.assertEqual(host.heartbeats, [{"done": 1}, {"done": 2}, {"done": 3}])

    def test_fails_at_fail_at_on_the_first_attempt_and_a_retry_resumes(self):
        host = FakeHost()
        error = invoke(app, "checkpoint", {"steps": 5, "fail_at": 2}, host=host).error
        self.assertEqual((error.kind, error.type_name), ("retryable", "Interrupted"))
        self.assertEqual(host.heartbeats, [{"done": 1}, {"done": 2}])

        retry = FakeHost()
        out = invoke(
            app,
            "checkpoint",
            {"steps": 5, "fail_at": 2},
            host=retry,
            attempt=2,
            last_heartbeat=host.heartbeats[-1],
        ).unwrap()
        self.assertEqual(out, {"resumed_from": 2, "done": 5, "attempt": 2})
        self.assertEqual(retry.heartbeats, [{"done": 3}, {"done": 4}, {"done": 5}])

    def test_a_checkpoint_that_is_not_ours_starts_over(self):
        for last in ("not json", [1, 2], {"other": 1}):
            out = invoke(app, "checkpoint", {"steps": 1}, attempt=2, last_heartbeat=last).unwrap()
            self.assertEqual(out["resumed_from"], 0, last)


class WaitForCancel(unittest.TestCase):
    def test_cancelled_once_a_heartbeat_reports_it(self):
        host = FakeHost(cancel_after=3)
        error = invoke(app, "wait_for_cancel", {}, host=host).error
        self.assertEqual((error.kind, error.type_name), ("retryable", "Cancelled"))
        self.assertEqual(host.heartbeats, [{"waiting": 1}, {"waiting": 2}, {"waiting": 3}])

    def test_not_cancelled_after_max_heartbeats(self):
        host = FakeHost()
        error = invoke(app, "wait_for_cancel", {"max_heartbeats": 2}, host=host).error
        self.assertEqual((error.kind, error.type_name), ("permanent", "NotCancelled"))
        self.assertEqual(len(host.heartbeats), 2)


class ConfigAndSecrets(unittest.TestCase):
    def test_config_reads_only_what_is_granted(self):
        host = FakeHost(config={"greeting": "hello"})
        self.assertEqual(invoke(app, "config", {"key": "greeting"}, host=host).unwrap(), {"value": "hello"})
        self.assertEqual(invoke(app, "config", {"key": "other"}, host=host).unwrap(), {"value": None})

    def test_secret_reports_presence_and_length_never_the_value(self):
        host = FakeHost(secrets={"token": "s3cret-value"})
        out = invoke(app, "secret", {"name": "token"}, host=host).unwrap()
        self.assertEqual(out, {"present": True, "length": 12})
        self.assertNotIn("s3cret", repr(host.logs))
        out = invoke(app, "secret", {"name": "missing"}, host=host).unwrap()
        self.assertEqual(out, {"present": False, "length": None})


class Log(unittest.TestCase):
    def test_logs_at_info_with_fields(self):
        host = FakeHost()
        out = invoke(app, "log", {"message": "hi", "fields": {"a": "1", "b": "x"}}, host=host)
        self.assertEqual(out.unwrap(), {"logged": True})
        self.assertEqual(
            [(line.level, line.message, line.fields) for line in host.logs],
            [("info", "hi", {"a": "1", "b": "x"})],
        )

    def test_fields_default_to_none_and_may_have_any_name(self):
        host = FakeHost()
        invoke(app, "log", {"message": "plain"}, host=host).unwrap()
        invoke(app, "log", {"message": "m", "fields": {"message": "x", "level": "y"}}, host=host).unwrap()
        self.assertEqual(host.logs[0].fields, {})
        self.assertEqual(host.logs[1].fields, {"message": "x", "level": "y"})

    def test_fields_must_be_strings(self):
        error = invoke(app, "log", {"message": "m", "fields": {"n": 1}}).error
        self.assertEqual(error.kind, "invalid_input")


class Connect(unittest.TestCase):
    def test_connects_natively(self):
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            accept = threading.Thread(target=lambda: server.accept()[0].close())
            accept.start()
            out = invoke(app, "connect", {"port": port}).unwrap()
            accept.join()
        self.assertEqual(out, {"connected": True})

    def test_a_refused_connection_escapes_as_an_uncaught_exception(self):
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
        error = invoke(app, "connect", {"port": port}).error
        self.assertEqual((error.kind, error.type_name), ("permanent", UNCAUGHT_EXCEPTION))
        self.assertIn("ConnectionRefusedError", error.message)


class ReadFile(unittest.TestCase):
    def test_returns_the_size(self):
        with tempfile.NamedTemporaryFile() as file:
            file.write(b"x" * 1234)
            file.flush()
            self.assertEqual(invoke(app, "read_file", {"path": file.name}).unwrap(), {"bytes": 1234})

    def test_read_failed_names_the_os_error(self):
        with tempfile.TemporaryDirectory() as dir:
            path = os.path.join(dir, "missing.txt")
            error = invoke(app, "read_file", {"path": path}).error
        self.assertEqual((error.kind, error.type_name), ("permanent", "ReadFailed"))
        self.assertIn("No such file or directory", error.message)
        self.assertEqual(error.details["path"], path)


if __name__ == "__main__":
    unittest.main()
