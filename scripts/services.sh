#!/usr/bin/env bash
# Makes sure the services the test suite talks to are up on this machine, installing
# them from Debian's packages when missing. Fails loudly when one cannot be had.
#   PostgreSQL: 127.0.0.1:5432, trust auth for local TCP, database "test".
#   Redis:      127.0.0.1:6379 (the realtime broker tests).
#   Chromium:   /usr/bin/chromium, Debian's package (the browser tests drive it through
#               Playwright; `playwright install` is never used).
#   Dovecot:    /usr/sbin/dovecot, Debian's dovecot-imapd (the e-mail tests start their own).
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
    return 1
}
apt_installed=""
apt_install() {
    if [ -z "$apt_installed" ]; then as_root apt-get update -qq; apt_installed=1; fi
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

ensure_postgresql() {
    if port_open 5432; then echo "PostgreSQL: answering on 127.0.0.1:5432"; return; fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "PostgreSQL: not installed; installing from Debian's packages …"
        apt_install postgresql
    fi
    version=$(ls /etc/postgresql | sort -V | tail -1)
    hba=/etc/postgresql/$version/main/pg_hba.conf
    if ! as_root grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
        as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    fi
    echo "PostgreSQL: starting cluster $version/main …"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_port 5432 || { echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2; exit 1; }
    as_root su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test"
}

ensure_redis() {
    if port_open 6379; then echo "Redis: answering on 127.0.0.1:6379"; return; fi
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "Redis: not installed; installing from Debian's packages …"
        apt_install redis-server
    fi
    echo "Redis: starting …"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_port 6379 || { echo "Redis did not come up on 127.0.0.1:6379" >&2; exit 1; }
}

ensure_chromium() {
    if [ -x /usr/bin/chromium ]; then echo "Chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"; return; fi
    echo "Chromium: not installed; installing from Debian's packages …"
    apt_install chromium fonts-noto-core fonts-noto-cjk
    [ -x /usr/bin/chromium ] || { echo "Chromium did not install to /usr/bin/chromium" >&2; exit 1; }
    echo "Chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
}

ensure_dovecot() {
    # Only the binary: the e-mail tests and benchmark run their own Dovecot on a free
    # loopback port with a private configuration (connectors/email/dovecot.py).
    if [ -x /usr/sbin/dovecot ]; then echo "Dovecot: $(/usr/sbin/dovecot --version 2>/dev/null | head -1)"; return; fi
    echo "Dovecot: not installed; installing from Debian's packages …"
    apt_install dovecot-imapd
    [ -x /usr/sbin/dovecot ] || { echo "Dovecot did not install to /usr/sbin/dovecot" >&2; exit 1; }
    # The package starts the system instance where it can; the tests do not use it.
    echo "Dovecot: $(/usr/sbin/dovecot --version 2>/dev/null | head -1)"
}

services=("$@")
[ ${#services[@]} -gt 0 ] || services=(postgresql redis chromium dovecot)
for service in "${services[@]}"; do
    "ensure_$service"
done
