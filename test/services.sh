#!/usr/bin/env bash
# Starts (or stops) the real servers that rotary's integration tests use, on
# loopback only, with throwaway data directories:
#   PostgreSQL 15 (database rotator)  → ROTARY_TEST_POSTGRES_URL
#   Redis 7       (redis rotator)     → ROTARY_TEST_REDIS_ADDR, ROTARY_TEST_REDIS_SERVER
#
#   eval "$(bash test/services.sh start)"   # installs if needed, starts, prints exports
#   bash test/services.sh stop
#
# Tests skip with a message when these variables are unset, so `go test ./...`
# still works on a machine without the servers.
set -euo pipefail

dir=${ROTARY_SERVICES_DIR:-/tmp/rotary-services}
pg_port=${ROTARY_PG_PORT:-55432}
redis_port=${ROTARY_REDIS_PORT:-56379}
# The superuser password of the throwaway cluster (loopback only, test data).
pg_password=rotary-test-admin

log() { echo "services: $*" >&2; }

pg_bin() {
	local b
	b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	[ -n "$b" ] && echo "$b"
}

install() {
	local need=()
	[ -n "$(pg_bin)" ] || need+=(postgresql)
	command -v redis-server >/dev/null || need+=(redis-server)
	if [ ${#need[@]} -gt 0 ]; then
		log "installing ${need[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >&2
		# The packages' own init scripts may try to start default instances;
		# policy-rc.d stops that (we start our own below).
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
		apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
		rm -f /usr/sbin/policy-rc.d
	fi
}

start_pg() {
	local bin data=$dir/pg
	bin=$(pg_bin)
	if [ -f "$data/postmaster.pid" ]; then stop_pg; fi
	rm -rf "$data" && mkdir -p "$data"
	# PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
	local runas=()
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || useradd --system --home "$dir" postgres
		chown -R postgres "$dir/pg"
		chmod 755 "$dir"
		runas=(runuser -u postgres --)
	fi
	printf '%s\n' "$pg_password" >"$dir/pg.pw"
	chmod 644 "$dir/pg.pw"
	# From a directory the postgres user may enter (the caller's may be private).
	(cd "$dir" && "${runas[@]}" "$bin/initdb" -D "$data" -U postgres --pwfile="$dir/pg.pw" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null)
	(cd "$dir" && "${runas[@]}" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
		-o "-p $pg_port -c listen_addresses=127.0.0.1 -k $data" start >/dev/null)
	log "PostgreSQL on 127.0.0.1:$pg_port"
}

stop_pg() {
	local bin runas=()
	bin=$(pg_bin) || return 0
	[ -f "$dir/pg/postmaster.pid" ] || return 0
	[ "$(id -u)" = 0 ] && runas=(runuser -u postgres --)
	(cd "$dir" && "${runas[@]}" "$bin/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null) || true
}

start_redis() {
	local data=$dir/redis
	stop_redis
	rm -rf "$data" && mkdir -p "$data"
	cat >"$data/redis.conf" <<CONF
bind 127.0.0.1
port $redis_port
dir $data
daemonize yes
pidfile $data/redis.pid
logfile $data/redis.log
save ""
appendonly no
CONF
	redis-server "$data/redis.conf"
	for _ in $(seq 1 100); do
		redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
		sleep 0.1
	done
	if ! redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
		log "Redis did not start; its log:"
		cat "$data/redis.log" >&2 || true
		exit 1
	fi
	log "Redis on 127.0.0.1:$redis_port"
}

stop_redis() {
	local pidfile=$dir/redis/redis.pid pid
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	kill "$pid" 2>/dev/null || true
	# Wait until it is gone, so a restart can bind the port again.
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$pidfile"
}

case "${1:-}" in
start)
	mkdir -p "$dir"
	install
	start_pg
	start_redis
	echo "export ROTARY_TEST_POSTGRES_URL='postgres://postgres:$pg_password@127.0.0.1:$pg_port/postgres?sslmode=disable'"
	echo "export ROTARY_TEST_REDIS_ADDR='127.0.0.1:$redis_port'"
	echo "export ROTARY_TEST_REDIS_SERVER='$(command -v redis-server)'"
	;;
stop)
	stop_pg
	stop_redis
	;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
