#!/bin/bash
# Make sure RabbitMQ answers on 127.0.0.1:5672 (guest/guest), starting the
# Debian rabbitmq-server by hand when it does not: there is no systemd here
# and policy-rc.d keeps apt from starting it.
#
# Silent when the broker already answers.  Fails loudly (with the broker's
# log) when it cannot be made to answer within START_TIMEOUT seconds.
set -euo pipefail

HOST=127.0.0.1
PORT=5672
START_TIMEOUT=${START_TIMEOUT:-90}

answers() {
    timeout 1 bash -c "exec 3<>/dev/tcp/$HOST/$PORT" 2>/dev/null
}

if answers; then
    exit 0
fi

if ! command -v rabbitmq-server >/dev/null; then
    echo "start_rabbitmq: rabbitmq-server is not installed (run tools/install_deps.sh)" >&2
    exit 1
fi

echo "start_rabbitmq: starting rabbitmq-server"
# -detached returns at once; the broker takes several seconds to listen.
rabbitmq-server -detached >/dev/null 2>&1 || true

deadline=$((SECONDS + START_TIMEOUT))
until answers; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "start_rabbitmq: $HOST:$PORT still not accepting after ${START_TIMEOUT}s" >&2
        tail -n 40 /var/log/rabbitmq/*.log >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.5
done
# The port opens before every plugin has booted; the tests' vhost fixture
# uses rabbitmqctl at once, so wait for the broker to say it is up.
timeout "$START_TIMEOUT" rabbitmqctl -q await_startup >/dev/null 2>&1 || true
echo "start_rabbitmq: RabbitMQ answers on $HOST:$PORT"
