// The component's main module: binds the plugin to the worker's imports and exports it. Only
// `make` uses it (Node.js cannot resolve the WIT imports of wit.js); tests import plugin.js.

import { component } from "./mlx_plugin/wit.js";
import { plugin as declared } from "./plugin.js";

export const plugin = component(declared);
