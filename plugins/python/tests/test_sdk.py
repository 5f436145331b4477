"""The SDK as a plugin author uses it: declaring operations, errors, logging, heartbeats,
config and secrets, run natively through `mlx_plugin.testing`."""

import json
import logging
import unittest

from mlx_plugin import (
    UNCAUGHT_EXCEPTION,
    App,
    Cancelled,
    Context,
    InvalidInput,
    Permanent,
    Retryable,
    config,
    log,
    schema,
)
from mlx_plugin.testing import FakeHost, invoke


def make_app() -> App:
    app = App("demo", "1.2.3", "A plugin for the tests.")

    @app.operation(
        input_schema=schema.object(
            {
                "name": schema.string(minLength=1),
                "times": schema.integer(minimum=1, maximum=3, default=1),
                "tags": schema.array(schema.string(), default=[]),
                "mode": {"enum": ["loud", "quiet"], "default": "quiet"},
            },
            required=["name"],
        ),
        output_schema=schema.object({"greeting": schema.string()}),
        errors={"invalid_input": ["Rude"], "retryable": ["Busy"]},
    )
    def greet(input, ctx):
        """Greets someone.

        Second paragraph."""
        log.info("greeting", name=input["name"], times=input["times"], tags=input["tags"])
        return {"greeting": " ".join([f"Hello, {input['name']}!"] * input["times"])}

    @app.operation("fail", input_schema=schema.object({"kind": schema.string()}))
    def fail(input):
        kind = input["kind"]
        if kind == "invalid_input":
            raise InvalidInput("Rude", "be nice", details={"word": "x"})
        if kind == "retryable":
            raise Retryable("Busy", "try later")
        if kind == "permanent":
            raise Permanent("Broken", "cannot work", details=[1, 2])
        if kind == "key":
            return {}["missing"]
        if kind == "exit":
            raise SystemExit(3)
        if kind == "memory":
            raise MemoryError()
        if kind == "nan":
            return {"x": float("nan")}
        if kind == "object":
            return {"x": object()}
        return {"kind": kind}

    @app.operation("work", validate_input=False)
    def work(input, ctx):
        start = (ctx.last_heartbeat or {}).get("step", 0)
        done = []
        for step in range(start, 5):
            done.append(step)
            if ctx.heartbeat({"step": step + 1}):
                raise Cancelled(f"cancelled after step {step}")
        return {"done": done, "attempt": ctx.attempt, "resumed_from": start}

    @app.operation("settings", validate_input=False)
    def settings(input, ctx):
        return {
            "region": config.get("region", "default-region"),
            "missing": config.get("nope"),
            "token_length": len(ctx.secret("token") or ""),
            "no_secret": ctx.secret("other"),
            "via_context": ctx.config("region"),
        }

    return app


class Declaring(unittest.TestCase):
    def test_operations_are_described_in_one_place(self):
        info = make_app().info()
        self.assertEqual((info["name"], info["version"]), ("demo", "1.2.3"))
        greet = info["operations"][0]
        self.assertEqual(greet["name"], "greet")
        self.assertEqual(
            greet["description"],
            "Greets someone.\n\nSecond paragraph. Errors: InvalidInput Rude; Retryable Busy.",
        )
        self.assertEqual(greet["input_schema"]["required"], ["name"])
        self.assertFalse(greet["input_schema"]["additionalProperties"])
        self.assertEqual(greet["output_schema"]["properties"]["greeting"], {"type": "string"})
        self.assertEqual(
            [op["name"] for op in info["operations"]], ["greet", "fail", "work", "settings"]
        )

    def test_an_operation_declared_twice_or_a_schema_not_json_is_refused_at_build_time(self):
        app = make_app()
        with self.assertRaises(ValueError):
            app.operation("greet")(lambda input: None)
        with self.assertRaises(ValueError):
            app.operation("nan", input_schema={"maximum": float("nan")})(lambda input: None)

    def test_export_is_none_off_a_component_build(self):
        self.assertIsNone(make_app().export())


class Dispatching(unittest.TestCase):
    def setUp(self):
        self.app = make_app()

    def test_output_and_defaults(self):
        result = invoke(self.app, "greet", {"name": "Ada", "times": 2})
        self.assertEqual(result.unwrap(), {"greeting": "Hello, Ada! Hello, Ada!"})

    def test_unknown_operation_names_the_real_ones(self):
        error = invoke(self.app, "nope", {}).error
        self.assertEqual((error.kind, error.type_name), ("invalid_input", "UnknownOperation"))
        self.assertIn("greet", error.message)

    def test_input_that_is_not_json(self):
        with FakeHost().installed():
            with self.assertRaises(InvalidInput) as caught:
                self.app.run("greet", "{", Context())
        self.assertEqual(caught.exception.type_name, "InvalidJson")

    def test_input_is_checked_against_the_schema_naming_path_and_rule(self):
        cases = [
            (None, "input: missing required property 'name'"),
            ({"name": "A", "colour": 1}, "input: unknown property 'colour'"),
            ({"name": 3}, "input.name: expected string, got integer"),
            ({"name": ""}, "input.name: minLength is 1, got 0"),
            ({"name": "A", "times": 9}, "input.times: maximum is 3, got 9"),
            ({"name": "A", "times": True}, "input.times: expected integer, got boolean"),
            ({"name": "A", "tags": ["a", 2]}, "input.tags[1]: expected string, got integer"),
            ({"name": "A", "mode": "shout"}, "input.mode: must be one of ['loud', 'quiet']"),
            ([], "input: expected object, got array"),
        ]
        for value, expected in cases:
            with self.subTest(value=value):
                error = invoke(self.app, "greet", value).error
                self.assertIsNotNone(error)
                self.assertEqual((error.kind, error.type_name), ("invalid_input", "InvalidInput"))
                self.assertIn(expected, error.message)
                self.assertTrue(error.details["problems"])

    def test_typed_errors_keep_kind_type_and_details(self):
        for kind, type_name, details in [
            ("invalid_input", "Rude", {"word": "x"}),
            ("retryable", "Busy", None),
            ("permanent", "Broken", [1, 2]),
        ]:
            with self.subTest(kind=kind):
                error = invoke(self.app, "fail", {"kind": kind}).error
                self.assertEqual((error.kind, error.type_name), (kind, type_name))
                self.assertEqual(error.details, details)
                expected = None if details is None else json.dumps(details)
                self.assertEqual(error.details_json(), expected)

    def test_an_uncaught_exception_is_permanent_with_its_traceback(self):
        error = invoke(self.app, "fail", {"kind": "key"}).error
        self.assertIsInstance(error, Permanent)
        self.assertEqual(error.type_name, UNCAUGHT_EXCEPTION)
        self.assertEqual(error.message, "KeyError: 'missing'")
        self.assertEqual(error.details["exception"], "KeyError")
        self.assertEqual(error.details["operation"], "fail")
        self.assertEqual(error.details["where"]["function"], "fail")
        self.assertIn("Traceback (most recent call last)", error.details["traceback"])
        self.assertIn('return {}["missing"]', error.details["traceback"])
        json.loads(error.details_json())

    def test_even_system_exit_is_an_error_not_a_trap(self):
        error = invoke(self.app, "fail", {"kind": "exit"}).error
        self.assertEqual((error.type_name, error.message), (UNCAUGHT_EXCEPTION, "SystemExit: 3"))

    def test_memory_error_is_left_to_the_worker(self):
        with self.assertRaises(MemoryError):
            invoke(self.app, "fail", {"kind": "memory"})

    def test_output_that_is_not_json_is_a_permanent_error(self):
        for kind in ("nan", "object"):
            with self.subTest(kind=kind):
                error = invoke(self.app, "fail", {"kind": kind}).error
                self.assertEqual((error.kind, error.type_name), ("permanent", "InvalidOutput"))


class TalkingToTheWorker(unittest.TestCase):
    def setUp(self):
        self.app = make_app()

    def test_log_lines_carry_fields(self):
        host = FakeHost()
        invoke(self.app, "greet", {"name": "Ada", "tags": ["x"]}, host=host).unwrap()
        [line] = host.logs
        self.assertEqual((line.level, line.message), ("info", "greeting"))
        self.assertEqual(line.fields, {"name": "Ada", "times": "1", "tags": '["x"]'})

    def test_log_levels_and_the_standard_logging_handler(self):
        host = FakeHost()
        with host.installed():
            log.trace("t")
            log.debug("d")
            log.warning("w", ok=True, nothing=None)
            log.error("e", ratio=0.5)
            logger = logging.getLogger("mlx-test")
            logger.propagate = False
            logger.setLevel(logging.DEBUG)
            handler = log.Handler()
            logger.addHandler(handler)
            try:
                logger.warning("from %s", "logging")
            finally:
                logger.removeHandler(handler)
            with self.assertRaises(ValueError):
                log.log("loud", "x")
        self.assertEqual(
            [(l.level, l.message) for l in host.logs],
            [
                ("trace", "t"),
                ("debug", "d"),
                ("warn", "w"),
                ("error", "e"),
                ("warn", "from logging"),
            ],
        )
        self.assertEqual(host.logs[2].fields, {"ok": "true", "nothing": "null"})
        self.assertEqual(host.logs[3].fields, {"ratio": "0.5"})
        self.assertEqual(host.logs[4].fields, {"logger": "mlx-test"})

    def test_heartbeats_record_checkpoints_and_a_retry_resumes_from_the_last(self):
        host = FakeHost()
        out = invoke(self.app, "work", {}, host=host).unwrap()
        self.assertEqual(out, {"done": [0, 1, 2, 3, 4], "attempt": 1, "resumed_from": 0})
        self.assertEqual(host.heartbeats[-1], {"step": 5})

        host = FakeHost()
        out = invoke(
            self.app, "work", {}, host=host, attempt=2, last_heartbeat={"step": 3}
        ).unwrap()
        self.assertEqual(out, {"done": [3, 4], "attempt": 2, "resumed_from": 3})
        self.assertEqual(host.heartbeats, [{"step": 4}, {"step": 5}])

    def test_cancellation_is_seen_at_a_heartbeat(self):
        host = FakeHost(cancel_after=2)
        error = invoke(self.app, "work", {}, host=host).error
        self.assertIsInstance(error, Cancelled)
        self.assertEqual((error.kind, error.type_name), ("retryable", "Cancelled"))
        self.assertEqual(host.heartbeats, [{"step": 1}, {"step": 2}])
        with host.installed():
            self.assertTrue(Context().is_cancelled())
            with self.assertRaises(Cancelled):
                Context().raise_if_cancelled()

    def test_last_heartbeat_that_is_not_json_means_start_over(self):
        self.assertIsNone(Context(last_heartbeat_details="{not json").last_heartbeat)
        self.assertIsNone(Context().last_heartbeat)
        self.assertEqual(Context(last_heartbeat_details='{"a": 1}').last_heartbeat, {"a": 1})

    def test_details_that_are_not_json_are_not_recorded(self):
        host = FakeHost()
        with host.installed():
            self.assertFalse(Context().heartbeat({"x": object()}))
        self.assertEqual(host.heartbeats, [])
        self.assertEqual(host.messages("warn"), ["heartbeat details not serializable"])

    def test_config_and_secrets_are_what_the_host_grants(self):
        host = FakeHost(config={"region": "eu-west-1"}, secrets={"token": "s3cr3t"})
        out = invoke(self.app, "settings", {}, host=host).unwrap()
        self.assertEqual(
            out,
            {
                "region": "eu-west-1",
                "missing": None,
                "token_length": 6,
                "no_secret": None,
                "via_context": "eu-west-1",
            },
        )
        out = invoke(self.app, "settings", {}).unwrap()
        self.assertEqual((out["region"], out["token_length"]), ("default-region", 0))


if __name__ == "__main__":
    unittest.main()
