#!/usr/bin/env bash
# `cargo deny check` (advisories, bans, licenses, sources) of the host workspace and of the
# guest plugins workspace, with one deny.toml. The RustSec advisory database comes from GitHub
# when it can be reached within seconds, else from the snapshot bundle in $SUPPLY_CHAIN (the
# test machines cannot reach GitHub). Which database and of which date is printed: a pass says
# "no known advisory as of that date", never less. No database at all is a failure.
#
# Environment (the Makefile sets them): CARGO_DENY, the pinned binary; SUPPLY_CHAIN, the
# directory holding advisory-db.bundle; DB_DIR, where databases are kept (inside the repo);
# ADVISORY_DB: auto (live, else snapshot), live or snapshot.
set -euo pipefail

: "${CARGO_DENY:?set CARGO_DENY to the cargo-deny binary (make deny does)}"
: "${SUPPLY_CHAIN:?set SUPPLY_CHAIN to the directory holding advisory-db.bundle}"
: "${DB_DIR:?set DB_DIR to the directory for advisory databases}"
ADVISORY_DB=${ADVISORY_DB:-auto}

URL=https://github.com/rustsec/advisory-db
# cargo-deny keeps the database for URL in <db-path>/advisory-db-<hash of URL>; this is the
# hash of the default URL above (cargo-deny 0.20.2).
DB_NAME=advisory-db-3157b0e258782691
# How long the live database may take to answer before the snapshot is used instead.
LIVE_TIMEOUT=${LIVE_TIMEOUT:-15}
BUNDLE="$SUPPLY_CHAIN/advisory-db.bundle"

fail() {
  echo "cargo deny: $*" >&2
  exit 1
}

describe_db() { # DIR LABEL: sets USED, the line that says what the check was against
  USED=$(git -C "$1/$DB_NAME" log -1 --format="$2, commit %h of %cs") \
    || fail "no advisory database in $1/$DB_NAME"
  echo "cargo deny: advisory database: $USED"
}

offline=()
live_ok=false
if [[ $ADVISORY_DB != snapshot ]]; then
  # cargo-deny's own fetch has no short timeout: ask the server first, briefly.
  if timeout "$LIVE_TIMEOUT" git ls-remote --exit-code "$URL" HEAD >/dev/null 2>&1; then
    export MLX_ADVISORY_DBS="$DB_DIR/live"
    mkdir -p "$MLX_ADVISORY_DBS"
    if timeout 600 "$CARGO_DENY" fetch db; then
      live_ok=true
      describe_db "$MLX_ADVISORY_DBS" "live, $URL"
    fi
  fi
  [[ $live_ok == true || $ADVISORY_DB == auto ]] || fail "the live database ($URL) cannot be fetched"
  $live_ok || echo "cargo deny: the live database ($URL) could not be fetched (tried for at most ${LIVE_TIMEOUT} s); using the snapshot"
fi

if ! $live_ok; then
  [[ -f $BUNDLE ]] || fail "neither the live advisory database ($URL) nor the snapshot
  ($BUNDLE) is available, so advisories cannot be checked. Either allow access to GitHub,
  or put a git bundle of the RustSec advisory-db there (git clone --mirror $URL;
  git -C advisory-db.git bundle create advisory-db.bundle --all), or point SUPPLY_CHAIN at
  the directory holding one: make deny SUPPLY_CHAIN=/path/to/dir"
  export MLX_ADVISORY_DBS="$DB_DIR/snapshot"
  db="$MLX_ADVISORY_DBS/$DB_NAME"
  # Always the bundle's newest commit: a bundle replaced by a newer (or older) one is used as
  # it is, and its date is the one reported.
  if [[ ! -d $db/.git ]]; then
    rm -rf "$db"
    mkdir -p "$MLX_ADVISORY_DBS"
    git clone --quiet "$BUNDLE" "$db"
  else
    git -C "$db" fetch --quiet "$(realpath "$BUNDLE")" HEAD
    git -C "$db" reset --quiet --hard FETCH_HEAD
  fi
  describe_db "$MLX_ADVISORY_DBS" "snapshot $BUNDLE"
  offline=(--offline)
fi

# cargo-deny reads the whole graph, every platform's crates included, through `cargo metadata`,
# which is offline with the snapshot: a fresh machine's builds never downloaded the crates only
# other platforms use (windows-sys, say), so both workspaces' are fetched first (crates.io is
# reachable where GitHub is not).
cargo fetch --locked --quiet
cargo fetch --locked --quiet --manifest-path plugins/Cargo.toml

echo "cargo deny: host workspace"
"$CARGO_DENY" "${offline[@]}" check
echo "cargo deny: guest plugins workspace (plugins/)"
# One deny.toml for both: what only the host graph has is "not encountered" here.
"$CARGO_DENY" "${offline[@]}" --manifest-path plugins/Cargo.toml --config deny.toml check \
  -A license-not-encountered -A license-exception-not-encountered
echo "cargo deny: passed; advisories checked against the $USED"
