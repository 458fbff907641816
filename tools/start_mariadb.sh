#!/bin/bash
# Make sure Debian's MariaDB answers on 127.0.0.1:3306, starting it by hand
# (its init script) when it does not: there is no systemd here and
# policy-rc.d keeps apt from starting it.  The Nova cloud fixture
# (tests/fixtures/nova_cloud.py) creates Neutron's database in it, as
# MariaDB's root over the local socket: Neutron's migrations are MySQL-only
# since 2025.2 (d553edeb540f_tag_case_sensitive runs "ALTER TABLE tags
# CONVERT TO CHARACTER SET utf8mb4", a syntax error on PostgreSQL).
#
# Silent when the server already answers.  Fails loudly when it cannot be
# made to answer within START_TIMEOUT seconds.
set -euo pipefail

HOST=127.0.0.1
PORT=3306
START_TIMEOUT=${START_TIMEOUT:-60}

answers() {
    timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null
}

if answers; then
    exit 0
fi

if [ ! -x /etc/init.d/mariadb ]; then
    echo "start_mariadb: mariadb-server is not installed (run tools/install_deps.sh)" >&2
    exit 1
fi

echo "start_mariadb: starting MariaDB"
/etc/init.d/mariadb start >/dev/null 2>&1 || true

deadline=$((SECONDS + START_TIMEOUT))
until answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "start_mariadb: $HOST:$PORT still not accepting after ${START_TIMEOUT}s" >&2
        tail -n 40 /var/log/mysql/error.log >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.5
done
echo "start_mariadb: MariaDB answers on $HOST:$PORT"
