"""The glue to the component's bindings (`mlx_plugin._wit`, `mlx_plugin.host.WitHost`),
against fakes of the modules componentize-py generates: what the worker receives."""

import importlib
import json
import unittest

from mlx_plugin import App, InvalidInput, Retryable, host, log, schema

from tests import fake_bindings


class ExportedPlugin(unittest.TestCase):
    def setUp(self):
        self.worker = fake_bindings.install()
        self.previous = host.install(host.WitHost())
        app = App("glue", "0.0.1", "Glue test.")

        @app.operation(
            input_schema=schema.object({"n": schema.integer()}, required=["n"]),
            output_schema=schema.object({"n": schema.integer()}),
        )
        def echo(input, ctx):
            log.info("echo", n=input["n"], attempt=ctx.attempt)
            ctx.heartbeat({"n": input["n"]})
            return {"n": input["n"], "last": ctx.last_heartbeat, "wf": ctx.workflow_id}

        @app.operation()
        def fail(input):
            if input.get("retry"):
                raise Retryable("Busy", "later", details={"in": 5})
            raise InvalidInput("Bad", "no")

        @app.operation()
        def crash(input):
            return 1 / 0

        @app.operation()
        def settings(input, ctx):
            return {"region": ctx.config("region"), "token": ctx.secret("token")}

        self.Plugin = app.export()
        self.assertIsNotNone(self.Plugin)

    def tearDown(self):
        host.install(self.previous)
        fake_bindings.uninstall()

    def context(self, last=None):
        return fake_bindings.InvocationContext("wf-9", "act-1", 2, last)

    def test_describe_sends_schemas_as_json_text(self):
        info = self.Plugin().describe()
        self.assertEqual((info.name, info.version), ("glue", "0.0.1"))
        echo = info.operations[0]
        self.assertEqual(echo.name, "echo")
        self.assertEqual(json.loads(echo.input_schema)["required"], ["n"])
        self.assertEqual(json.loads(echo.output_schema)["type"], "object")

    def test_invoke_returns_json_text_and_reaches_the_imports(self):
        out = self.Plugin().invoke("echo", '{"n": 4}', self.context('{"n": 3}'))
        self.assertEqual(json.loads(out), {"n": 4, "last": {"n": 3}, "wf": "wf-9"})
        [(level, message, fields)] = self.worker.logs
        self.assertEqual((level, message), (fake_bindings.Level.INFO, "echo"))
        field = fake_bindings.Field
        self.assertEqual(fields, [field("n", "4"), field("attempt", "2")])
        self.assertEqual(self.worker.heartbeats, ['{"n": 4}'])

    def test_errors_become_the_wit_variant_cases(self):
        plugin = self.Plugin()
        with self.assertRaises(fake_bindings.Err) as caught:
            plugin.invoke("fail", '{"retry": true}', self.context())
        case = caught.exception.value
        self.assertIsInstance(case, fake_bindings.PluginError_Retryable)
        self.assertEqual(
            (case.value.type_name, case.value.message, case.value.details),
            ("Busy", "later", '{"in": 5}'),
        )
        with self.assertRaises(fake_bindings.Err) as caught:
            plugin.invoke("fail", "{}", self.context())
        self.assertIsInstance(caught.exception.value, fake_bindings.PluginError_InvalidInput)
        self.assertIsNone(caught.exception.value.value.details)
        with self.assertRaises(fake_bindings.Err) as caught:
            plugin.invoke("echo", '{"n": "x"}', self.context())
        self.assertIsInstance(caught.exception.value, fake_bindings.PluginError_InvalidInput)

    def test_an_uncaught_exception_is_a_permanent_case_with_the_traceback(self):
        with self.assertRaises(fake_bindings.Err) as caught:
            self.Plugin().invoke("crash", "{}", self.context())
        case = caught.exception.value
        self.assertIsInstance(case, fake_bindings.PluginError_Permanent)
        self.assertEqual(case.value.type_name, "UncaughtException")
        self.assertEqual(case.value.message, "ZeroDivisionError: division by zero")
        details = json.loads(case.value.details)
        self.assertIn("return 1 / 0", details["traceback"])
        self.assertEqual(details["where"]["function"], "crash")

    def test_config_and_secrets_come_from_the_config_import(self):
        self.worker.config["region"] = "eu"
        self.worker.secrets["token"] = "t0k"
        out = self.Plugin().invoke("settings", "{}", self.context())
        self.assertEqual(json.loads(out), {"region": "eu", "token": "t0k"})

    def test_cancellation_comes_from_the_activity_import(self):
        self.worker.cancelled = True
        self.assertTrue(host.current().is_cancelled())
        self.assertTrue(host.current().heartbeat("{}"))

    def test_every_level_maps_to_the_wit_enum(self):
        for level in host.LEVELS:
            log.log(level, level)
        self.assertEqual(
            [lvl.name.lower() for lvl, _, _ in self.worker.logs], list(host.LEVELS)
        )


class Module(unittest.TestCase):
    def test_the_sdk_imports_without_bindings(self):
        fake_bindings.uninstall()
        importlib.reload(importlib.import_module("mlx_plugin"))
        self.assertIsInstance(host.current(), host.Host)


if __name__ == "__main__":
    unittest.main()
