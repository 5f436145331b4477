#!/usr/bin/env bash
# Starts a persistent Temporal dev server and the worker, runs the demo MLTrainingWorkflow on
# the bundled dataset and prints its result. Both keep running so the Web UI can be browsed;
# `make stop` (this script with `stop`) ends them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN="$ROOT/.run"
TEMPORAL=${TEMPORAL:-$ROOT/tools/venv/bin/temporal}
WORKER=${WORKER:-$ROOT/target/debug/mlx-worker}
PLUGINS_DIR=${PLUGINS_DIR:-$ROOT/build/plugins}
PORT=${TEMPORAL_PORT:-7233}
UI_PORT=${TEMPORAL_UI_PORT:-8233}
QUEUE=${TASK_QUEUE:-mlx-plugins}
ADDRESS="127.0.0.1:$PORT"

stop_pid() { # name
  local file="$RUN/$1.pid"
  if [[ -f $file ]]; then
    local pid; pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      echo "stopped $1 (pid $pid)"
    fi
    rm -f "$file"
  fi
}

if [[ ${1:-} == stop ]]; then
  stop_pid worker
  stop_pid temporal
  exit 0
fi

mkdir -p "$RUN"
# Whatever a previous `make run` left behind is replaced, not duplicated.
stop_pid worker
stop_pid temporal

echo "starting Temporal dev server on $ADDRESS (history persisted in .run/temporal.db)"
"$TEMPORAL" server start-dev --ip 127.0.0.1 --port "$PORT" --ui-port "$UI_PORT" \
  --db-filename "$RUN/temporal.db" --log-level warn \
  --dynamic-config-value activity.enableStandalone=true \
  >"$RUN/temporal.log" 2>&1 &
echo $! >"$RUN/temporal.pid"

for i in $(seq 150); do
  "$TEMPORAL" operator cluster health --address "$ADDRESS" >/dev/null 2>&1 && break
  if ! kill -0 "$(cat "$RUN/temporal.pid")" 2>/dev/null; then
    echo "the dev server exited; see .run/temporal.log:"; tail -20 "$RUN/temporal.log"; exit 1
  fi
  sleep 0.2
  [[ $i == 150 ]] && { echo "the dev server did not become healthy in 30 s"; exit 1; }
done

echo "starting the worker (logs in .run/worker.log)"
TEMPORAL_ADDRESS=$ADDRESS "$WORKER" run --plugins-dir "$PLUGINS_DIR" --task-queue "$QUEUE" \
  --artifacts-dir "$RUN/artifacts" --cache-dir "$RUN/cache" >"$RUN/worker.log" 2>&1 &
echo $! >"$RUN/worker.pid"
for i in $(seq 300); do
  grep -q "worker polling" "$RUN/worker.log" && break
  if ! kill -0 "$(cat "$RUN/worker.pid")" 2>/dev/null; then
    echo "the worker exited; see .run/worker.log:"; tail -20 "$RUN/worker.log"; exit 1
  fi
  sleep 0.2
  [[ $i == 300 ]] && { echo "the worker did not start polling in 60 s"; exit 1; }
done

WORKFLOW_ID="ml-training-demo-$(date +%Y%m%d-%H%M%S)"
INPUT=$(cat "$ROOT/scripts/demo-input.json")
echo "running MLTrainingWorkflow $WORKFLOW_ID"
"$TEMPORAL" workflow execute --address "$ADDRESS" --task-queue "$QUEUE" \
  --type MLTrainingWorkflow --workflow-id "$WORKFLOW_ID" --input "$INPUT" -o json \
  >"$RUN/demo-result.json"
python3 - "$RUN/demo-result.json" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))
result = out.get("result", out)
print(json.dumps(result, indent=2))
m = result.get("metrics", {})
print(f"\ntest accuracy {m.get('accuracy')}, macro F1 {m.get('f1_macro', m.get('macro_f1'))}")
PY
echo
echo "artifacts:   $RUN/artifacts/$WORKFLOW_ID/"
echo "Temporal Web UI: http://127.0.0.1:$UI_PORT/namespaces/default/workflows/$WORKFLOW_ID"
echo "The dev server and worker keep running; stop them with: make stop"
