#!/bin/sh
# A real Karrio server for Waybill's tests, started by `waybill_testkit::karrio`.
#
#   server.sh prepare HOME
#       Once per HOME and version, under a lock (two test processes may ask at once):
#       a venv with the pinned packages (HOME/VERSION/venv), then a migrated SQLite
#       database with the test superuser (HOME/VERSION/template.sqlite3).
#   server.sh run HOME WORK PORT PARENT_PID
#       Copies the template into WORK and serves on 127.0.0.1:PORT until PARENT_PID is
#       gone (the test process: statics are never dropped, so this watchdog is what stops
#       the server), then removes WORK.
#
# Environment: KARRIO_VERSION (the pin), KARRIO_PLUGINS (the mockship plugin),
# KARRIO_ADMIN_EMAIL and KARRIO_ADMIN_PASSWORD (the superuser of the template).
# Progress and errors go to stderr; the long outputs of pip and migrate go to logs
# beside the venv.
set -eu

KV="${KARRIO_VERSION:?KARRIO_VERSION is not set}"

say() { echo "karrio: $*" >&2; }
fail() {
    say "error: $*"
    exit 1
}

# Everything a `karrio` command needs to run headless on SQLite, offline.
karrio_env() {
    export SECRET_KEY=waybill-tests-only-not-a-secret
    export DATABASE_ENGINE=sqlite3
    export DATABASE_NAME="$1/db.sqlite3"
    export WORK_DIR="$1"
    export ALLOWED_HOSTS=127.0.0.1,localhost
    export DEBUG_MODE=True
    # Webhooks and other tasks run inside the web process: no worker to start.
    export WORKER_IMMEDIATE_MODE=True
    # Tests send bursts; the default limits (60-600 a minute) would answer 429.
    export ANON_RATE_LIMIT=100000/minute USER_RATE_LIMIT=100000/minute
    export CARRIER_REQUEST_RATE_LIMIT=100000/minute
    # No __pycache__ in the source tree (the plugin is imported from it).
    export PYTHONDONTWRITEBYTECODE=1
    # Nothing of the machine's own configuration: no Redis, no telemetry.
    unset REDIS_HOST REDIS_URL REDIS_PORT DATABASE_URL SENTRY_DSN POSTHOG_KEY \
        OTEL_EXPORTER_OTLP_ENDPOINT OTEL_SERVICE_NAME 2>/dev/null || true
}

prepare() {
    home="$1"
    dir="$home/$KV"
    mkdir -p "$dir"
    command -v flock >/dev/null 2>&1 || fail "flock not found (Debian: apt-get install util-linux)"
    exec 9>"$dir/.lock"
    if ! flock -n 9; then
        say "waiting for another test process that is installing Karrio $KV in $dir"
        flock 9
    fi

    if [ ! -f "$dir/venv/.installed" ]; then
        command -v python3 >/dev/null 2>&1 ||
            fail "python3 not found: Karrio $KV needs CPython 3.11 or newer with pip and venv"
        python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
            fail "$(python3 --version 2>&1) is too old: Karrio $KV needs Python 3.11 or newer"
        say "installing Karrio $KV into $dir/venv (pip; once, 1-3 minutes; log: $dir/install.log)"
        rm -rf "$dir/venv"
        t0=$(date +%s)
        python3 -m venv "$dir/venv" >"$dir/install.log" 2>&1 ||
            fail "'python3 -m venv' failed (on Debian: apt-get install python3-venv); see $dir/install.log"
        [ -x "$dir/venv/bin/pip" ] ||
            fail "the venv has no pip (on Debian: apt-get install python3-venv python3-pip)"
        # karrio-server alone has no shipments, webhooks or GraphQL, and migrate needs
        # every module below. Never karrio-server-documents: it fetches a CSS file from
        # a CDN when imported, so every command fails offline.
        "$dir/venv/bin/pip" install --no-input \
            "karrio-server==$KV" "karrio-server-manager==$KV" "karrio-server-proxy==$KV" \
            "karrio-server-events==$KV" "karrio-server-graph==$KV" \
            "karrio-server-pricing==$KV" "karrio-server-orders==$KV" \
            "karrio-server-data==$KV" "karrio-generic==$KV" >>"$dir/install.log" 2>&1 ||
            fail "pip install of Karrio $KV failed; see $dir/install.log"
        touch "$dir/venv/.installed"
        say "installed in $(($(date +%s) - t0)) s"
    fi

    if [ ! -f "$dir/template.sqlite3" ]; then
        say "migrating a template database (once, about 1-2 minutes; log: $dir/migrate.log)"
        t0=$(date +%s)
        tmp="$dir/template.tmp"
        rm -rf "$tmp"
        mkdir -p "$tmp"
        (
            cd "$tmp"
            karrio_env "$tmp"
            "$dir/venv/bin/karrio" migrate --noinput
            DJANGO_SUPERUSER_EMAIL="$KARRIO_ADMIN_EMAIL" \
                DJANGO_SUPERUSER_PASSWORD="$KARRIO_ADMIN_PASSWORD" \
                "$dir/venv/bin/karrio" createsuperuser --noinput
        ) >"$dir/migrate.log" 2>&1 || fail "karrio migrate failed; see $dir/migrate.log"
        mv "$tmp/db.sqlite3" "$dir/template.sqlite3"
        rm -rf "$tmp"
        say "template database ready in $(($(date +%s) - t0)) s"
    fi
}

run() {
    home="$1" work="$2" port="$3" parent="$4"
    dir="$home/$KV"
    cp "$dir/template.sqlite3" "$work/db.sqlite3"
    cd "$work"
    karrio_env "$work"
    # Tests call in parallel, and SQLite has one writer: writers queue (BEGIN IMMEDIATE,
    # up to 30 s) instead of failing with "database is locked"; WAL lets reads go on.
    export DATABASE_URL="sqlite:///$work/db.sqlite3?timeout=30&transaction_mode=IMMEDIATE&init_command=PRAGMA%20journal_mode%3DWAL"
    "$dir/venv/bin/karrio" runserver "127.0.0.1:$port" --noreload >"$work/server.log" 2>&1 &
    child=$!
    # The watchdog: once the test process is gone, stop the server (TERM, then KILL).
    (
        while kill -0 "$parent" 2>/dev/null; do sleep 1; done
        kill "$child" 2>/dev/null || exit 0
        for _ in 1 2 3 4 5; do
            sleep 1
            kill -0 "$child" 2>/dev/null || exit 0
        done
        kill -9 "$child" 2>/dev/null || true
    ) &
    watchdog=$!
    trap 'kill "$child" 2>/dev/null || true' TERM INT HUP
    status=0
    wait "$child" || status=$?
    # A trapped signal ends the first wait early: wait for the server itself.
    wait "$child" 2>/dev/null || true
    kill "$watchdog" 2>/dev/null || true
    if kill -0 "$parent" 2>/dev/null; then
        # The server stopped by itself: keep WORK (its server.log) for the test to show.
        say "server on port $port exited with status $status; log: $work/server.log"
        exit 1
    fi
    rm -rf "$work"
}

case "${1:-}" in
prepare)
    [ $# -eq 2 ] || fail "usage: $0 prepare HOME"
    prepare "$2"
    ;;
run)
    [ $# -eq 5 ] || fail "usage: $0 run HOME WORK PORT PARENT_PID"
    run "$2" "$3" "$4" "$5"
    ;;
*) fail "usage: $0 prepare HOME | run HOME WORK PORT PARENT_PID" ;;
esac
