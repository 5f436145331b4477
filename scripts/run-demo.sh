#!/usr/bin/env bash
# Starts a persistent Temporal dev server and the worker, runs the demo MLTrainingWorkflow on
# the bundled dataset and prints its result, then the example pipelines: training.yaml (Rust
# plugins, an approval gate), sweep.yaml (a fan-out over learning rates, run twice to show the
# step cache) and features.yaml (Rust, JavaScript and Python plugins in one run).
# Both keep running so the Web UI can be browsed; `make stop` (this script with `stop`) ends them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN="$ROOT/.run"
TEMPORAL=${TEMPORAL:-$ROOT/tools/venv/bin/temporal}
WORKER=${WORKER:-$ROOT/target/debug/mlx-worker}
PLUGINS_DIR=${PLUGINS_DIR:-$ROOT/build/plugins}
PORT=${TEMPORAL_PORT:-7233}
UI_PORT=${TEMPORAL_UI_PORT:-8233}
# The pipelines page (`mlx-worker ui`).
PAGE_PORT=${MLX_UI_PORT:-8080}
QUEUE=${TASK_QUEUE:-mlx-plugins}
ADDRESS="127.0.0.1:$PORT"
MLFLOW=${MLFLOW:-$ROOT/tools/mlflow-venv/bin/mlflow}
MLFLOW_PORT=${MLFLOW_PORT:-5000}
TRACKING_URI="http://127.0.0.1:$MLFLOW_PORT"
LINEAGE_PYTHON=${LINEAGE_PYTHON:-$ROOT/tools/lineage-venv/bin/python}

# Plays the person at a pipeline's approval gate: waits until `approve` waits (or the run
# ends), then approves it. Sets FOLLOWER to the `pipeline run --wait` process to wait for.
approve_when_asked() { # workflow-id follower-pid
  local id=$1 state=""
  FOLLOWER=$2
  for _ in $(seq 1500); do
    state=$("$WORKER" pipeline status "$id" --json 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
gate = next(st for st in s["steps"] if st["id"] == "approve")
print("waiting" if gate["status"] == "waiting_approval" else s["state"])' 2>/dev/null || true)
    [[ $state == waiting || $state == succeeded || $state == failed ]] && break
    kill -0 "$FOLLOWER" 2>/dev/null || break
    sleep 0.2
  done
  if [[ $state == waiting ]]; then
    echo "the approval step is waiting; approving it as a person would:"
    echo "  mlx-worker pipeline approve $id approve --comment 'make run demo'"
    "$WORKER" pipeline approve "$id" approve --by demo --comment "make run demo"
  fi
}

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
  stop_pid ui
  stop_pid worker
  stop_pid mlflow
  stop_pid temporal
  exit 0
fi

mkdir -p "$RUN"
# Whatever a previous `make run` left behind is replaced, not duplicated.
stop_pid ui
stop_pid worker
stop_pid mlflow
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

# The sweep logs its models to MLflow (SQLite and artifacts under .run/mlflow).
echo "starting MLflow on $TRACKING_URI (logs in .run/mlflow.log)"
mkdir -p "$RUN/mlflow"
"$MLFLOW" server --host 127.0.0.1 --port "$MLFLOW_PORT" --workers 1 \
  --backend-store-uri "sqlite:///$RUN/mlflow/mlflow.db" \
  --artifacts-destination "$RUN/mlflow/artifacts" >"$RUN/mlflow.log" 2>&1 &
echo $! >"$RUN/mlflow.pid"
# The mlflow plugin may reach that server and nothing else (loopback only when listed).
printf '%s\n' "# Written by scripts/run-demo.sh: the demo's MLflow server." "[http]" \
  "allow = [\"$TRACKING_URI\"]" "max_request_kb = 65536" "[limits]" "memory_mb = 256" \
  "timeout_secs = 300" >"$PLUGINS_DIR/mlflow.toml"
for i in $(seq 600); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$TRACKING_URI/health" >/dev/null 2>&1 && break
  if ! kill -0 "$(cat "$RUN/mlflow.pid")" 2>/dev/null; then
    echo "MLflow exited; see .run/mlflow.log:"; tail -20 "$RUN/mlflow.log"; exit 1
  fi
  sleep 0.2
  [[ $i == 600 ]] && { echo "MLflow did not become healthy in 120 s"; exit 1; }
done

echo "starting the worker (logs in .run/worker.log, OpenLineage events in .run/openlineage.jsonl)"
TEMPORAL_ADDRESS=$ADDRESS "$WORKER" run --plugins-dir "$PLUGINS_DIR" --task-queue "$QUEUE" \
  --openlineage-url "file://$RUN/openlineage.jsonl" \
  --artifacts-dir "$RUN/artifacts" --cache-dir "$RUN/cache" >"$RUN/worker.log" 2>&1 &
echo $! >"$RUN/worker.pid"
# It polls once every plugin is loaded. The first start compiles the Python and JavaScript
# components (an interpreter each, 13-18 MB) with the debug-built worker: about a minute of both
# cores; later starts read .run/cache.
for i in $(seq 1500); do
  grep -q "worker polling" "$RUN/worker.log" && break
  if ! kill -0 "$(cat "$RUN/worker.pid")" 2>/dev/null; then
    echo "the worker exited; see .run/worker.log:"; tail -20 "$RUN/worker.log"; exit 1
  fi
  sleep 0.2
  [[ $i == 1500 ]] && { echo "the worker did not start polling in 5 minutes"; exit 1; }
done

WORKFLOW_ID="ml-training-demo-$(date +%Y%m%d-%H%M%S)"
INPUT=$(cat "$ROOT/scripts/demo-input.json")
echo "running MLTrainingWorkflow $WORKFLOW_ID"
"$TEMPORAL" workflow execute --address "$ADDRESS" --task-queue "$QUEUE" \
  --type MLTrainingWorkflow --workflow-id "$WORKFLOW_ID" --input "$INPUT" -o json \
  >"$RUN/demo-result.json"
# The worker's artifacts root: a run's /artifacts/... is $HOST_ARTIFACTS/<workflow id>/...
HOST_ARTIFACTS="$RUN/artifacts"
python3 - "$RUN/demo-result.json" "$HOST_ARTIFACTS/$WORKFLOW_ID" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))
result = out.get("result", out)
on_host = lambda p: p and p.replace("/artifacts/", sys.argv[2] + "/", 1)
print(json.dumps(result, indent=2))
m, r = result["metrics"], result["rounds"]
print(f"\n{result['family']} ({result['task']}), {r['run']} of {r['total']} rounds, "
      f"final training loss {r['final_loss']}")
print(f"test accuracy {m['accuracy']:.4f}, macro F1 {m['f1_macro']:.4f}, "
      f"ROC AUC {m['roc_auc']}, log loss {m['log_loss']:.4f} ({m['n']} rows)")
print(f"model:       {on_host(result['model']['path'])}")
if result.get("loss_curve"):
    print(f"loss curve:  {on_host(result['loss_curve'])}")
PY
echo
echo "artifacts:   $RUN/artifacts/$WORKFLOW_ID/"
echo "Temporal Web UI: http://127.0.0.1:$UI_PORT/namespaces/default/workflows/$WORKFLOW_ID"

# The same work as a pipeline spec (pipelines/training.yaml): extract, train, evaluate, then an
# approval gate before the model is registered. The demo plays the person who approves.
PIPELINE_ID="training-demo-$(date +%Y%m%d-%H%M%S)"
export TEMPORAL_ADDRESS=$ADDRESS MLX_TASK_QUEUE=$QUEUE
echo
echo "running the pipeline pipelines/training.yaml as $PIPELINE_ID"
# No --plugins-dir check here: it compiles every component in the directory without a cache,
# the Python and JavaScript ones included; the worker checks names when a step runs.
"$WORKER" pipeline run "$ROOT/pipelines/training.yaml" \
  --id "$PIPELINE_ID" --wait >"$RUN/pipeline.log" 2>&1 &
approve_when_asked "$PIPELINE_ID" $!
status=0
wait $FOLLOWER || status=$?
cat "$RUN/pipeline.log"
"$WORKER" pipeline status "$PIPELINE_ID"
[[ $status == 0 ]] || { echo "the pipeline did not succeed (exit $status)"; exit 1; }
python3 - "$("$WORKER" pipeline output "$PIPELINE_ID" evaluate)" \
  "$("$WORKER" pipeline output "$PIPELINE_ID" register)" "$HOST_ARTIFACTS/$PIPELINE_ID" \
  "$ROOT/registry" <<'PY'
import json, sys
ev, reg = json.loads(sys.argv[1]), json.loads(sys.argv[2])
on_host = lambda p: p and p.replace("/artifacts/", sys.argv[3] + "/", 1).replace(
    "/registry/", sys.argv[4] + "/", 1)
m = ev["metrics"]
print(f"evaluate: {ev['family']} on {ev['rows']} test rows: accuracy {m['accuracy']:.4f}, "
      f"macro F1 {m['f1_macro']:.4f}, ROC AUC {m['roc_auc']}, log loss {m['log_loss']:.4f}")
print(f"  confusion matrix {m['confusion_matrix']} (rows: true {', '.join(m['classes'])})")
print("plots (SVG):")
for name, path in ev["plots"].items():
    if path:
        print(f"  {name:20} {on_host(path)}")
e = reg["entry"]
print("registered %s v%s: %s %s (accuracy %.4f, sha256 %s...) at %s" % (
    e["name"], e["version"], e["model"]["family"], json.dumps(e["model"]["hyperparameters"]),
    e["metrics"]["accuracy"], e["sha256"][:12], on_host(reg["model_path"])))
PY
echo "registry:    $ROOT/registry/ (mlx-worker registry list --registry-dir $ROOT/registry)"
echo "Temporal Web UI: http://127.0.0.1:$UI_PORT/namespaces/default/workflows/$PIPELINE_ID"

# A hyperparameter sweep (pipelines/sweep.yaml): one gradient-boosted model per learning rate,
# two at a time, the lowest validation log loss evaluated and registered behind the approval
# gate. Run twice: the second run takes every unchanged step from the step cache.
SWEEP_IDS=()
for round in first second; do
  SWEEP_ID="sweep-demo-$round-$(date +%Y%m%d-%H%M%S)"
  SWEEP_IDS+=("$SWEEP_ID")
  echo
  echo "running the pipeline pipelines/sweep.yaml as $SWEEP_ID ($round run)"
  "$WORKER" pipeline run "$ROOT/pipelines/sweep.yaml" --id "$SWEEP_ID" --wait \
    --param "tracking_uri=$TRACKING_URI" >"$RUN/sweep.log" 2>&1 &
  approve_when_asked "$SWEEP_ID" $!
  status=0
  wait $FOLLOWER || status=$?
  cat "$RUN/sweep.log"
  "$WORKER" pipeline status "$SWEEP_ID"
  [[ $status == 0 ]] || { echo "the pipeline did not succeed (exit $status)"; exit 1; }
done
python3 - "$("$WORKER" pipeline output "$SWEEP_ID" sweep)" \
  "$("$WORKER" pipeline output "$SWEEP_ID" evaluate)" \
  "$("$WORKER" pipeline output "$SWEEP_ID" register)" <<'PY'
import json, sys
sweep, ev, reg = (json.loads(a) for a in sys.argv[1:])
print("sweep (validation split):")
for n, item in enumerate(sweep["items"]):
    m = item["output"]["metrics"]
    mark = "  <- best" if n == sweep["best"]["index"] else ""
    print(f"  learning_rate {item['item']:<5} log loss {m['log_loss']:.4f}  accuracy {m['accuracy']:.4f}{mark}")
m = ev["metrics"]
print(f"best on the held-out test split: accuracy {m['accuracy']:.4f}, log loss {m['log_loss']:.4f}")
e = reg["entry"]
again = " (already registered: the same model bytes)" if reg.get("already_registered") else ""
print(f"registered {e['name']} v{e['version']} (sha256 {e['sha256'][:12]}...){again}")
PY
# What MLflow has of the sweep, through MLflow's own client.
"$(dirname "$MLFLOW")/python" - "$TRACKING_URI" "${SWEEP_IDS[@]}" <<'PY'
import sys
from mlflow import MlflowClient
client = MlflowClient(sys.argv[1])
exp = client.get_experiment_by_name("breast-cancer-sweep")
runs = [run for pipeline in sys.argv[2:] for run in client.search_runs(
    [exp.experiment_id], f"tags.`mlx.workflow_id` = '{pipeline}'",
    order_by=["attributes.start_time ASC"])]
print(f"MLflow ({sys.argv[1]}/#/experiments/{exp.experiment_id}), experiment {exp.name}:")
for r in runs:
    history = client.get_metric_history(r.info.run_id, "train_loss")
    print(f"  {r.info.run_name:8} {r.info.status:9} learning_rate "
          f"{r.data.params.get('hyperparameters.learning_rate')}, validation log loss "
          f"{r.data.metrics.get('log_loss', float('nan')):.4f}, {len(history)} train_loss "
          f"points, from pipeline {r.data.tags.get('mlx.workflow_id')}")
PY
echo "lineage:     $WORKER pipeline lineage $SWEEP_ID --artifacts-dir $RUN/artifacts"
"$LINEAGE_PYTHON" "$ROOT/scripts/check_openlineage.py" "$RUN/openlineage.jsonl" \
  | python3 -c 'import json, sys; s = json.load(sys.stdin); print("OpenLineage:", s["events"], "events", s["types"], "in", sys.argv[1] + ", each accepted by openlineage-python")' \
  "$RUN/openlineage.jsonl"
echo "Temporal Web UI: http://127.0.0.1:$UI_PORT/namespaces/default/workflows/$SWEEP_ID"

# Three languages in one run (pipelines/features.yaml): csv (Rust) splits iris, validate
# (JavaScript) checks both splits, features (Python) engineers them, trainer (Rust) trains and
# evaluates on the engineered files.
FEATURES_ID="features-demo-$(date +%Y%m%d-%H%M%S)"
echo
echo "running the pipeline pipelines/features.yaml as $FEATURES_ID"
status=0
"$WORKER" pipeline run "$ROOT/pipelines/features.yaml" --id "$FEATURES_ID" --wait \
  >"$RUN/features.log" 2>&1 || status=$?
cat "$RUN/features.log"
"$WORKER" pipeline status "$FEATURES_ID"
[[ $status == 0 ]] || { echo "the pipeline did not succeed (exit $status)"; exit 1; }
output() { "$WORKER" pipeline output "$FEATURES_ID" "$1"; }
python3 - "$(output validate_train)" "$(output validate_test)" "$(output features_train)" \
  "$(output features_test)" "$(output evaluate)" <<'PY'
import json, sys
v_train, v_test, f_train, f_test, ev = (json.loads(a) if a.strip() else None for a in sys.argv[1:])
for name, v in (("train", v_train), ("test", v_test)):
    verdict = "valid" if v["valid"] else "INVALID: " + ", ".join(v["invalid_columns"] + v["missing_columns"])
    print(f"validate (JavaScript): {name} split {v['rows']} rows x {v['columns']} columns, "
          f"{v['missing_cells']} missing cells, {verdict}; report {v['report']}")
if ev is None:
    sys.exit("a split broke a rule, so nothing was engineered or trained; see the reports above")
numeric = f_train["stats"]["numeric"]
print(f"features (Python): {f_train['rows']} train rows -> {f_train['path']}, columns {', '.join(f_train['columns'])}")
print("  fitted on train: " + "; ".join(f"{c} mean {numeric[c]['mean']:.3f} std {numeric[c]['std']:.3f}"
                                      for c in f_train["columns"] if c in numeric))
print(f"  applied to the test split: {f_test['rows']} rows -> {f_test['path']}; "
      f"imputed cells: {sum(f_train['imputed'].values())} train, {sum(f_test['imputed'].values())} test")
m = ev["metrics"]
print(f"evaluate (Rust): test accuracy {m['accuracy']:.4f}, macro F1 {m['f1_macro']:.4f} "
      "on the engineered test split")
PY
echo "artifacts:   $RUN/artifacts/$FEATURES_ID/"
echo "Temporal Web UI: http://127.0.0.1:$UI_PORT/namespaces/default/workflows/$FEATURES_ID"

# The pipelines page, and one more training run left at its approval gate for a person to
# approve there (the demo does not approve this one).
"$WORKER" ui --listen "127.0.0.1:$PAGE_PORT" --address "$ADDRESS" \
  --temporal-ui "http://127.0.0.1:$UI_PORT" --artifacts-dir "$RUN/artifacts" >"$RUN/ui.log" 2>&1 &
echo $! >"$RUN/ui.pid"
for i in $(seq 150); do
  grep -q "pipelines UI:" "$RUN/ui.log" && break
  kill -0 "$(cat "$RUN/ui.pid")" 2>/dev/null || { echo "the UI exited; see .run/ui.log:"; cat "$RUN/ui.log"; exit 1; }
  sleep 0.2
done
PAGE=$(grep -o 'http://[^ ]*' "$RUN/ui.log" | head -1)
# Gradient boosting, whose loss by round the page draws (the forest has none), and a threshold
# it clears, so the gate asks.
GATED_ID="training-approve-me-$(date +%Y%m%d-%H%M%S)"
"$WORKER" pipeline run "$ROOT/pipelines/training.yaml" --id "$GATED_ID" \
  --param 'model={"family": "gradient_boosting", "hyperparameters": {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3, "seed": 42}}' \
  --param min_accuracy=0.9 >/dev/null
echo
echo "Temporal Web UI: http://127.0.0.1:$UI_PORT/namespaces/default/workflows"
echo "Pipelines UI:    $PAGE"
echo "  $GATED_ID waits for your approval there: open the address, then the run, click 'approve'"
echo "The dev server, worker and pipelines UI keep running; stop them with: make stop"
