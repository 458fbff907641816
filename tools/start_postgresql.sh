#!/bin/bash
# Make sure Debian's PostgreSQL answers on 127.0.0.1:5432, starting its
# cluster by hand when it does not: there is no systemd here and
# policy-rc.d keeps apt from starting it.  The Gnocchi fixture
# (tests/fixtures/gnocchi.py) creates a database of its own in it, as the
# postgres superuser over the local socket.
#
# Silent when the server already answers.  Fails loudly (with the server's
# log) when it cannot be made to answer within START_TIMEOUT seconds.
set -euo pipefail

HOST=127.0.0.1
PORT=5432
START_TIMEOUT=${START_TIMEOUT:-60}

answers() {
    timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null
}

if answers; then
    exit 0
fi

if ! command -v pg_ctlcluster >/dev/null || [ ! -d /etc/postgresql ]; then
    echo "start_postgresql: postgresql is not installed (run tools/install_deps.sh)" >&2
    exit 1
fi

# The one cluster Debian's postgresql package creates ("main", under the
# server's major version).
version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
echo "start_postgresql: starting cluster $version/main"
pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true

deadline=$((SECONDS + START_TIMEOUT))
until answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "start_postgresql: $HOST:$PORT still not accepting after ${START_TIMEOUT}s" >&2
        tail -n 40 "/var/log/postgresql/postgresql-$version-main.log" >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.5
done
echo "start_postgresql: PostgreSQL answers on $HOST:$PORT"
