// Where an invocation comes from, and its channel back to Temporal.

import * as config from "./config.js";
import { currentHost } from "./host.js";
import * as log from "./log.js";
import { Cancelled, finiteOnly } from "./errors.js";

/** Passed to every operation. A fresh instance serves every invocation, so nothing survives
 * between calls except what goes through `heartbeat`: the next attempt reads it back with
 * `lastHeartbeat()`.
 *
 *   const start = ctx.lastHeartbeat()?.row ?? 0;   // resume where the last attempt was
 *   for (let row = start; row < total; row++) {
 *     ...
 *     if (row % 1000 === 0 && ctx.heartbeat({ row })) throw new Cancelled(`cancelled at row ${row}`);
 *   }
 */
export class Context {
  constructor({
    workflowId = "detached-workflow",
    activityId = "detached-activity",
    attempt = 1,
    lastHeartbeatDetails = null,
  } = {}) {
    this.workflowId = workflowId;
    this.activityId = activityId;
    /** 1 for the first attempt, incremented on every retry. */
    this.attempt = attempt;
    /** The previous attempt's last heartbeat details, as the JSON text it recorded. */
    this.lastHeartbeatRaw = lastHeartbeatDetails ?? null;
    this.log = log;
  }

  /** The previous attempt's last heartbeat details decoded from JSON: a checkpoint to resume
   * from. null if there is none or it is not JSON; then start over. */
  lastHeartbeat() {
    if (this.lastHeartbeatRaw === null) return null;
    try {
      return JSON.parse(this.lastHeartbeatRaw);
    } catch {
      return null;
    }
  }

  /** Records a Temporal heartbeat whose details (progress and checkpoint) are `details` as
   * JSON. Returns true once cancellation has been requested: stop soon (the worker interrupts
   * the plugin after a grace period), typically by throwing `Cancelled`.
   *
   * Details that are not JSON are not recorded (a warning is logged); the cancellation state
   * is still returned. */
  heartbeat(details = null) {
    let text;
    try {
      text = JSON.stringify(details ?? null, finiteOnly);
    } catch (e) {
      log.warn("heartbeat details not serializable", { error: String(e?.message ?? e) });
      return this.isCancelled();
    }
    return Boolean(currentHost().heartbeat(text));
  }

  /** True once cancellation of this activity has been requested. */
  isCancelled() {
    return Boolean(currentHost().isCancelled());
  }

  /** Throws `Cancelled` once cancellation has been requested. */
  throwIfCancelled(message = "cancellation requested") {
    if (this.isCancelled()) throw new Cancelled(message);
  }

  /** The manifest's `[config]` value for `key`, or `fallback` (see config.js). */
  config(key, fallback = null) {
    return config.get(key, fallback);
  }

  /** The secret granted under `name`, or null (see config.js). */
  secret(name) {
    return config.secret(name);
  }
}
