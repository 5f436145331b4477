"""`{{name}}`: a plugin for the MLX Plugin Worker. componentize-py exports `Plugin` from this
module (the component's main module); `make` builds {{name}}.wasm."""

from mlx_plugin import App, Context, InvalidInput, log, schema

app = App("{{name}}", "0.1.0", "Greets people. Replace with what your plugin does.")


# One place per operation: its name (the function's), doc (the docstring), input and output
# schemas (the worker refuses inputs that do not match before your code runs) and errors.
@app.operation(
    input_schema=schema.object({"name": schema.string("Who to greet.")}, required=["name"]),
    output_schema=schema.object({"greeting": schema.string()}, required=["greeting"]),
    errors=["EmptyName"],
)
def greet(input: dict, ctx: Context) -> dict:
    """Returns a greeting for `name`."""
    name = input["name"].strip()
    if not name:
        # Typed errors: InvalidInput and Permanent are never retried, Retryable is.
        raise InvalidInput("EmptyName", "name must not be blank")
    # Into the worker's structured log, tagged with the workflow and activity.
    log.info("greeting", name=name, attempt=str(ctx.attempt))
    return {"greeting": f"Hello, {name}!"}


Plugin = app.export()
