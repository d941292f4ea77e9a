#!/usr/bin/env bash
# bench/run.sh - katascope overhead benchmark (connection storm).
#
# One run measures, on this machine:
#   baseline    bench/connstorm without the agent: a paced phase (--rate
#               connections/s for --duration s) and an unpaced phase (as
#               fast as it goes for --sat-duration s);
#   with agent  the same two phases with build/katascope running, and for
#               each: the agent's CPU (utime+stime from /proc/PID/stat) and
#               memory (VmRSS, VmHWM from /proc/PID/status), the agent's
#               counts for service_name="connstorm" against what connstorm
#               itself completed, katascope_ringbuf_lost_total and
#               katascope_map_full_dropped_total, and the run time of each
#               of the agent's BPF programs (kernel.bpf_stats_enabled=1 for
#               the agent phase, restored afterwards).
# The results are printed as a markdown section and, unless --quick or
# --no-write, replace the results part of docs/benchmarks.md.
#
# Needs root, gcc, curl, jq and bpftool (/usr/sbin/bpftool on Debian).
#
# Exit status: 0 when everything ran and the targets were met; 1 when the
# bench could not run (build, agent start, connstorm error, ...); 3 when it
# ran but a target was missed (a count that differs, an event lost, RSS over
# the limit) - the report says which.
set -euo pipefail

usage() {
	cat <<EOF
Usage: bench/run.sh [OPTIONS]
  --duration S       seconds of the paced phase, each of baseline/agent (default 30)
  --rate N           target connections/s of the paced phase (default 5000)
  --sat-duration S   seconds of the unpaced phase (default: --duration; 0 skips it)
  --threads N        connstorm client threads (default 4)
  --idle S           seconds of agent idle CPU measurement (default 10)
  --port P           agent listen port on 127.0.0.1 (default 19464)
  --build-dir DIR    CMake build directory for the agent (default REPO/build)
  --agent PATH       use this katascope binary, do not build
  --quick            about 10 s in all: --duration 2 --sat-duration 1 --idle 1,
                     nothing written to docs/ unless --write
  --write            write docs/benchmarks.md (default unless --quick)
  --no-write         only print the report
  -h, --help         this text
EOF
}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOC="$REPO/docs/benchmarks.md"
DURATION=30
RATE=5000
SAT_DURATION=
THREADS=4
IDLE=10
PORT=19464
BUILD_DIR="$REPO/build"
AGENT=
AGENT_GIVEN=0
QUICK=0
WRITE=
RSS_LIMIT_MIB=64
FOLD_TIMEOUT=10 # s to wait for the agent's counts to catch up
BPFTOOL=${BPFTOOL:-$(command -v bpftool || echo /usr/sbin/bpftool)}
CMDLINE="bench/run.sh"
for a in "$@"; do CMDLINE+=" $(printf '%q' "$a")"; done

log() { echo "bench: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
need_num() { [[ $2 =~ ^[0-9]+([.][0-9]+)?$ ]] || die "invalid value '$2' for $1: expected a number"; }

while [ $# -gt 0 ]; do
	case $1 in
	--duration) need_num "$1" "${2-}"; DURATION=$2; shift ;;
	--rate) need_num "$1" "${2-}"; RATE=$2; shift ;;
	--sat-duration) need_num "$1" "${2-}"; SAT_DURATION=$2; shift ;;
	--threads) need_num "$1" "${2-}"; THREADS=$2; shift ;;
	--idle) need_num "$1" "${2-}"; IDLE=$2; shift ;;
	--port) need_num "$1" "${2-}"; PORT=$2; shift ;;
	--build-dir) BUILD_DIR=${2:?--build-dir needs a directory}; shift ;;
	--agent) AGENT=${2:?--agent needs a path}; AGENT_GIVEN=1; shift ;;
	--quick) QUICK=1 ;;
	--write) WRITE=1 ;;
	--no-write) WRITE=0 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown option '$1'" ;;
	esac
	shift
done
if [ "$QUICK" = 1 ]; then
	DURATION=2 SAT_DURATION=1 IDLE=1 FOLD_TIMEOUT=6
	WRITE=${WRITE:-0}
fi
SAT_DURATION=${SAT_DURATION:-$DURATION}
WRITE=${WRITE:-1}
awk -v d="$DURATION" 'BEGIN { exit !(d > 0) }' || die "--duration must be > 0"
[ "$PORT" != 9464 ] || die "--port 9464 is the tests' port; pick another"

# ---- preconditions --------------------------------------------------------

[ "$(id -u)" = 0 ] || die "must run as root (loads BPF programs, sets kernel.bpf_stats_enabled)"
for t in gcc curl jq awk; do
	command -v "$t" >/dev/null || die "'$t' not found; install it (apt-get install $t)"
done
[ -x "$BPFTOOL" ] || die "bpftool not found (apt-get install bpftool, or set BPFTOOL=/path)"
[ -r /proc/sys/kernel/bpf_stats_enabled ] || die "this kernel has no kernel.bpf_stats_enabled"
if command -v ss >/dev/null && [ -n "$(ss -Hltn "sport = :$PORT" 2>/dev/null)" ]; then
	die "port $PORT is already in use; pass --port"
fi

WORK=$(mktemp -d /tmp/katascope-bench.XXXXXX)
AGENT_PID=
STORM_PID=
STATS_SAVED=
PROG_IDS=
# set by agent_phase
agent_paced_SECS=0 agent_paced_CPU=0 agent_paced_RSS_KB=0
agent_sat_SECS=0 agent_sat_CPU=0 agent_sat_RSS_KB=0

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$STORM_PID" ] && kill -0 "$STORM_PID" 2>/dev/null; then
		kill "$STORM_PID" 2>/dev/null || true
		wait "$STORM_PID" 2>/dev/null || true
	fi
	if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
		kill "$AGENT_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$AGENT_PID" 2>/dev/null || true
		wait "$AGENT_PID" 2>/dev/null || true
	fi
	if [ -n "$STATS_SAVED" ]; then
		echo "$STATS_SAVED" >/proc/sys/kernel/bpf_stats_enabled || true
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- build -----------------------------------------------------------------

log "building connstorm"
gcc -O2 -Wall -Wextra -pthread -o "$WORK/connstorm" "$REPO/bench/connstorm.c" ||
	die "connstorm did not compile"
CONNSTORM="$WORK/connstorm"

if [ -z "$AGENT" ]; then
	if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
		log "configuring $BUILD_DIR"
		cmake -S "$REPO" -B "$BUILD_DIR" >"$WORK/cmake.log" 2>&1 ||
			{ tail -20 "$WORK/cmake.log" >&2; die "cmake failed"; }
	fi
	log "building the agent in $BUILD_DIR"
	make -C "$BUILD_DIR" -j"$(nproc)" katascope >"$WORK/make.log" 2>&1 ||
		{ tail -30 "$WORK/make.log" >&2; die "the agent did not build"; }
	AGENT="$BUILD_DIR/katascope"
fi
[ -x "$AGENT" ] || die "agent binary $AGENT not found"

# ---- helpers ----------------------------------------------------------------

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.6f\", $* }"; }
fmt() { awk -v v="$2" "BEGIN { printf \"$1\", v }"; }

# kv FILE KEY: a value from connstorm's key=value output
kv() { awk -F= -v k="$2" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' "$1"; }

# metric FILE NAME [label="value" ...]: sum of the matching series (0 if none)
metric() {
	local file=$1 name=$2
	shift 2
	awk -v name="$name" -v want="$*" '
		BEGIN { n = split(want, w, " ") }
		$0 !~ /^#/ {
			i = index($1, "{"); m = i ? substr($1, 1, i - 1) : $1
			if (m != name) next
			for (j = 1; j <= n; j++) if (index($1, w[j]) == 0) next
			s += $NF
		}
		END { printf "%.0f\n", s }' "$file"
}

scrape() { curl -fsS --max-time 5 "http://127.0.0.1:$PORT/metrics" >"$1"; }

# CPU ticks (utime + stime) of a process
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)

# ids of the BPF programs / maps the agent holds open
agent_ids() {
	cat /proc/"$AGENT_PID"/fdinfo/* 2>/dev/null |
		awk -v k="$1:" '$1 == k { print $2 }' | sort -un | paste -sd, -
}

# prog_snapshot FILE: run_cnt/run_time_ns of the agent's handle_* programs
prog_snapshot() {
	"$BPFTOOL" prog show -j | jq -c --argjson ids "[$PROG_IDS]" '
		[ .[] | select(.id as $i | $ids | index($i))
		      | select(.name | startswith("handle_"))
		      | { id, name, run_cnt: (.run_cnt // 0),
		          run_time_ns: (.run_time_ns // 0) } ]' >"$1"
}

# prog_table BEFORE AFTER SECONDS: markdown rows, busiest program first
prog_table() {
	jq -r --slurpfile b "$1" --argjson secs "$3" '
		($b[0] | map({ key: (.id | tostring), value: . }) | from_entries) as $before
		| map(. as $p | ($before[$p.id | tostring] // { run_cnt: 0, run_time_ns: 0 }) as $q
		      | { name, runs: ($p.run_cnt - $q.run_cnt),
		          ns: ($p.run_time_ns - $q.run_time_ns) })
		| sort_by(-.ns) | .[]
		| "| \(.name) | \(.runs) | \(.runs / $secs | floor) | " +
		  (if .runs > 0 then "\(.ns / .runs | floor)" else "-" end) +
		  " | \(.ns / 1e9 / $secs * 100 * 1000 | round / 1000) |"' "$2"
	jq -r --slurpfile b "$1" --argjson secs "$3" '
		((map(.run_time_ns) | add) - ($b[0] | map(.run_time_ns) | add)) as $ns
		| "| **all** | \((map(.run_cnt) | add) - ($b[0] | map(.run_cnt) | add)) | | | \($ns / 1e9 / $secs * 100 * 1000 | round / 1000) |"' "$2"
}

# storm LABEL RATE DURATION: run connstorm, output in $WORK/LABEL.kv
storm() {
	log "connstorm $1: --rate $2 --duration $3"
	OTEL_SERVICE_NAME=connstorm "$CONNSTORM" --rate "$2" --duration "$3" \
		--threads "$THREADS" >"$WORK/$1.kv" 2>"$WORK/$1.err" &
	STORM_PID=$!
	if ! wait "$STORM_PID"; then
		STORM_PID=
		cat "$WORK/$1.err" >&2
		die "connstorm ($1) failed"
	fi
	STORM_PID=
	log "  $(tr '\n' ' ' <"$WORK/$1.kv")"
}

agent_alive() {
	local rc=0
	kill -0 "$AGENT_PID" 2>/dev/null && return 0
	wait "$AGENT_PID" || rc=$?
	AGENT_PID=
	log "the agent's last words:"
	tail -20 "$WORK/agent.log" >&2
	if [ "$rc" -gt 128 ]; then
		die "the agent died during the run (signal $((rc - 128)))"
	fi
	die "the agent exited during the run (status $rc)"
}

# expected LABEL: the agent counts connstorm implies, "active passive
# closed_active closed_passive failed"
expected() {
	local f="$WORK/$1.kv"
	echo "$(($(kv "$f" completed) + $(kv "$f" io_failed))) $(kv "$f" accepted)" \
		"$(($(kv "$f" completed) + $(kv "$f" io_failed))) $(kv "$f" accepted)" \
		"$(kv "$f" connect_failed)"
}

# counted BEFORE AFTER: the same five figures from two scrapes
counted() {
	local s='service_name="connstorm"' dir out='' b a
	for m in opened:active opened:passive closed:active closed:passive failed:; do
		dir=${m#*:}
		case $m in
		opened:*) m=katascope_tcp_connections_opened_total ;;
		closed:*) m=katascope_tcp_connections_closed_total ;;
		failed:*) m=katascope_tcp_connect_failed_total ;;
		esac
		b=$(metric "$1" "$m" "$s" ${dir:+"direction=\"$dir\""})
		a=$(metric "$2" "$m" "$s" ${dir:+"direction=\"$dir\""})
		out+="$((a - b)) "
	done
	echo "${out% }"
}

# agent_phase LABEL RATE DURATION
agent_phase() {
	local l=$1 c0 c1 t0 t1 deadline
	agent_alive
	note_foreign FOREIGN_AGENT
	scrape "$WORK/$l.m0"
	prog_snapshot "$WORK/$l.p0"
	c0=$(cpu_ticks "$AGENT_PID")
	t0=$(now)
	storm "$l" "$2" "$3"
	t1=$(now)
	agent_alive
	c1=$(cpu_ticks "$AGENT_PID")
	prog_snapshot "$WORK/$l.p1"
	note_foreign FOREIGN_AGENT
	# Opens are folded every --refresh-ms, closes arrive by ring buffer:
	# wait until the counts match, or give up after FOLD_TIMEOUT.
	deadline=$(calc "$(now) + $FOLD_TIMEOUT")
	while :; do
		scrape "$WORK/$l.m1"
		[ "$(counted "$WORK/$l.m0" "$WORK/$l.m1")" = "$(expected "$l")" ] && break
		awk -v a="$(now)" -v b="$deadline" 'BEGIN { exit !(a > b) }' && break
		sleep 0.25
	done
	# results as ${LABEL}_SECS, ${LABEL}_CPU, ${LABEL}_RSS_KB
	printf -v "${l}_SECS" %s "$(calc "$t1 - $t0")"
	printf -v "${l}_CPU" %s "$(calc "($c1 - $c0) / $CLK_TCK")"
	printf -v "${l}_RSS_KB" %s "$(status_kb "$AGENT_PID" VmRSS)"
}

# handle_* BPF programs that are not our agent's (another katascope, e.g. a
# test run) would make the baseline a with-agent run and double the cost in
# the agent phase; sampled between phases, the report says so.
foreign_progs() {
	"$BPFTOOL" prog show -j | jq --argjson ids "[${PROG_IDS:-}]" '
		[ .[] | select(.name | startswith("handle_"))
		      | select(.id as $i | $ids | index($i) | not) ] | length'
}
note_foreign() { # VAR: keep the largest count seen in VAR
	local n
	n=$(foreign_progs)
	if [ "$n" -gt "${!1}" ]; then printf -v "$1" %s "$n"; fi
}

# ---- baseline ----------------------------------------------------------------

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
FOREIGN=0 FOREIGN_AGENT=0
note_foreign FOREIGN
storm base_paced "$RATE" "$DURATION"
note_foreign FOREIGN
if [ "$SAT_DURATION" != 0 ]; then storm base_sat 0 "$SAT_DURATION"; fi
note_foreign FOREIGN

# ---- with the agent ----------------------------------------------------------

STATS_SAVED=$(cat /proc/sys/kernel/bpf_stats_enabled)
echo 1 >/proc/sys/kernel/bpf_stats_enabled

log "starting $AGENT --listen 127.0.0.1:$PORT"
"$AGENT" --listen "127.0.0.1:$PORT" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 300); do
	agent_alive
	curl -fs --max-time 1 "http://127.0.0.1:$PORT/healthz" >/dev/null && break
	sleep 0.1
done
curl -fs --max-time 1 "http://127.0.0.1:$PORT/healthz" >"$WORK/healthz.json" ||
	die "the agent did not become healthy within 30 s"
PROG_IDS=$(agent_ids prog_id)
MAP_IDS=$(agent_ids map_id)
[ -n "$PROG_IDS" ] || die "no BPF programs found among the agent's file descriptors"

log "agent idle for ${IDLE}s"
C0=$(cpu_ticks "$AGENT_PID")
T0=$(now)
sleep "$IDLE"
IDLE_CPU=$(calc "($(cpu_ticks "$AGENT_PID") - $C0) / $CLK_TCK")
IDLE_SECS=$(calc "$(now) - $T0")
IDLE_RSS_KB=$(status_kb "$AGENT_PID" VmRSS)

agent_phase agent_paced "$RATE" "$DURATION"
if [ "$SAT_DURATION" != 0 ]; then agent_phase agent_sat 0 "$SAT_DURATION"; fi

agent_alive
scrape "$WORK/final.m"
HWM_KB=$(status_kb "$AGENT_PID" VmHWM)
END_RSS_KB=$(status_kb "$AGENT_PID" VmRSS)
SELF_RSS=$(metric "$WORK/final.m" katascope_agent_memory_rss_bytes)
MAP_BYTES=$("$BPFTOOL" map show -j | jq --argjson ids "[$MAP_IDS]" \
	'[ .[] | select(.id as $i | $ids | index($i)) | .bytes_memlock // 0 ] | add // 0')

log "stopping the agent"
kill "$AGENT_PID"
AGENT_RC=0
for _ in $(seq 100); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
wait "$AGENT_PID" || AGENT_RC=$?
AGENT_PID=
echo "$STATS_SAVED" >/proc/sys/kernel/bpf_stats_enabled
STATS_SAVED=

# ---- report ------------------------------------------------------------------

FAILS=()
W="$WORK"
mib() { calc "$1 / 1024 / 1024"; }

throughput_row() { # LABEL NAME
	local f="$W/$1.kv"
	[ -f "$f" ] || return 0
	printf '| %s | %s | %s | %s | %s / %s | %s | %s | %s |\n' "$2" \
		"$(awk -v r="$(kv "$f" target_rate)" 'BEGIN { print (r > 0 ? r : "unpaced") }')" \
		"$(kv "$f" elapsed_s)" "$(kv "$f" completed)" \
		"$(kv "$f" connect_failed)" "$(kv "$f" io_failed)" \
		"$(kv "$f" achieved_rate)" \
		"$(fmt %.1f "$(calc "($(kv "$f" cpu_user_s) + $(kv "$f" cpu_sys_s)) * 1e6 / ($(kv "$f" completed) + 1e-9)")")" \
		"$(kv "$f" late_max_ms)"
}

ratio() { # BASE AGENT
	if [ ! -f "$W/$1.kv" ] || [ ! -f "$W/$2.kv" ]; then
		echo "n/a"
		return
	fi
	fmt %.3f "$(calc "$(kv "$W/$2.kv" achieved_rate) / $(kv "$W/$1.kv" achieved_rate)")"
}

counts_rows() { # LABEL NAME
	local e c i names
	[ -f "$W/$1.kv" ] || return 0
	read -r -a e <<<"$(expected "$1")"
	read -r -a c <<<"$(counted "$W/$1.m0" "$W/$1.m1")"
	names=("opened, active" "opened, passive" "closed, active" "closed, passive" "connect failed")
	for i in 0 1 2 3 4; do
		printf '| %s | %s | %s | %s | %s |\n' "$2" "${names[$i]}" "${e[$i]}" "${c[$i]}" \
			"$((c[i] - e[i]))"
	done
}

drops_of() { # LABEL: "ringbuf_lost map_full" deltas
	echo "$(($(metric "$W/$1.m1" katascope_ringbuf_lost_total) - $(metric "$W/$1.m0" katascope_ringbuf_lost_total)))" \
		"$(($(metric "$W/$1.m1" katascope_map_full_dropped_total) - $(metric "$W/$1.m0" katascope_map_full_dropped_total)))"
}

# targets
read -r -a PE <<<"$(expected agent_paced)"
read -r -a PC <<<"$(counted "$W/agent_paced.m0" "$W/agent_paced.m1")"
read -r P_LOST P_FULL <<<"$(drops_of agent_paced)"
P_RATE=$(kv "$W/agent_paced.kv" achieved_rate)
COUNTS_OK=1
[ "${PE[*]}" = "${PC[*]}" ] || COUNTS_OK=0
LOSS_RESULT="met"
if [ "$COUNTS_OK" != 1 ] || [ "$P_LOST" != 0 ] || [ "$P_FULL" != 0 ]; then
	LOSS_RESULT="**missed**"
	FAILS+=("events lost at the paced rate (counts $([ "$COUNTS_OK" = 1 ] && echo equal || echo differ), ringbuf_lost $P_LOST, map_full $P_FULL)")
fi
if awk -v a="$P_RATE" -v r="$RATE" 'BEGIN { exit !(a < 0.95 * r) }'; then
	LOSS_RESULT+=" (but connstorm reached only $P_RATE/s of $RATE/s)"
fi
HWM_MIB=$(fmt %.1f "$(calc "$HWM_KB / 1024")")
RSS_RESULT="met"
if awk -v h="$HWM_KB" -v l="$RSS_LIMIT_MIB" 'BEGIN { exit !(h >= l * 1024) }'; then
	RSS_RESULT="**missed**"
	FAILS+=("agent peak RSS $HWM_MIB MiB >= $RSS_LIMIT_MIB MiB")
fi
if [ "$AGENT_RC" != 0 ]; then
	FAILS+=("the agent exited with status $AGENT_RC on SIGTERM")
fi

cpu_row() { # NAME CPU_S SECS RSS_KB
	printf '| %s | %s | %s | %s | %s |\n' "$1" "$(fmt %.1f "$3")" "$(fmt %.2f "$2")" \
		"$(fmt %.2f "$(calc "$2 * 60 / $3")")" "$(fmt %.1f "$(calc "$4 / 1024")")"
}

COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$REPO" status --porcelain -- agent bpf 2>/dev/null)" ]; then
	COMMIT+=" with uncommitted changes in agent/ or bpf/"
fi
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM_GIB=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)

{
	echo "## Connection storm, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "Command (from the repository root, as root): \`$CMDLINE\`"
	echo
	echo "- Kernel: $(uname -r) ($(uname -m)); machine: $(nproc) CPUs (${CPU_MODEL:-unknown model}), $MEM_GIB GiB RAM"
	if [ "$AGENT_GIVEN" = 1 ]; then
		echo "- Agent: \`$AGENT\` as given (the repository is at $COMMIT); default options except \`--listen 127.0.0.1:$PORT\`"
	else
		echo "- Agent: \`$AGENT\` built from $COMMIT; default options except \`--listen 127.0.0.1:$PORT\`"
	fi
	echo "- connstorm: $THREADS client threads, 2 accept threads, one process, \`OTEL_SERVICE_NAME=connstorm\`;"
	echo "  paced phase ${DURATION}s at $RATE connections/s, unpaced phase ${SAT_DURATION}s (0: skipped)"
	echo "- Load average before / after: $LOADAVG_START / $(cut -d' ' -f1-3 /proc/loadavg)"
	if [ "$FOREIGN" != 0 ]; then
		echo "- **Caveat:** $FOREIGN BPF programs named handle_* (another katascope?) were loaded"
		echo "  during the baseline, so the baseline is not agent-free"
	fi
	if [ "$FOREIGN_AGENT" != 0 ]; then
		echo "- **Caveat:** $FOREIGN_AGENT BPF programs named handle_* that are not this agent's"
		echo "  were loaded during the agent phase (another katascope?): the traced processes paid for both"
	fi
	echo "- \`kernel.bpf_stats_enabled=1\` for the whole agent phase (it adds two clock reads to"
	echo "  every BPF program run, so the with-agent figures include that cost)"
	echo
	echo "### Targets"
	echo
	echo "| target | result | measured |"
	echo "|---|---|---|"
	echo "| no event lost at $RATE connections/s | $LOSS_RESULT | counts $([ "$COUNTS_OK" = 1 ] && echo "equal" || echo "**differ**") at $P_RATE conn/s; ringbuf lost $P_LOST; map full $P_FULL |"
	echo "| agent RSS under $RSS_LIMIT_MIB MiB | $RSS_RESULT | peak (VmHWM) $HWM_MIB MiB |"
	echo
	echo "### connstorm throughput"
	echo
	echo "| run | target conn/s | seconds | completed | failed (connect / io) | achieved conn/s | connstorm CPU µs/conn | worst lag ms |"
	echo "|---|---|---|---|---|---|---|---|"
	throughput_row base_paced "paced, no agent"
	throughput_row agent_paced "paced, with agent"
	throughput_row base_sat "unpaced, no agent"
	throughput_row agent_sat "unpaced, with agent"
	echo
	echo "Throughput with / without the agent: paced $(ratio base_paced agent_paced), unpaced $(ratio base_sat agent_sat)."
	echo "connstorm CPU µs/conn is its own user+system time (getrusage) per completed connection;"
	echo "the BPF programs that run in its context (state changes, accept, its context switches) are part of it."
	echo
	echo "### Agent counts vs connstorm (service_name=\"connstorm\")"
	echo
	echo "Expected: opened/closed active = connections connstorm's client established"
	echo "(completed + io failures), opened/closed passive = connections its server accepted."
	echo
	echo "| run | metric | connstorm | agent | agent - connstorm |"
	echo "|---|---|---|---|---|"
	counts_rows agent_paced paced
	counts_rows agent_sat unpaced
	echo
	read -r L F <<<"$(drops_of agent_paced)"
	echo "- paced: katascope_ringbuf_lost_total +$L, katascope_map_full_dropped_total +$F"
	if [ -f "$W/agent_sat.kv" ]; then
		read -r L F <<<"$(drops_of agent_sat)"
		echo "- unpaced: katascope_ringbuf_lost_total +$L, katascope_map_full_dropped_total +$F"
	fi
	echo
	echo "### Agent CPU and memory"
	echo
	echo "| window | seconds | agent CPU s (user+sys) | CPU s per minute | VmRSS after, MiB |"
	echo "|---|---|---|---|---|"
	cpu_row "idle" "$IDLE_CPU" "$IDLE_SECS" "$IDLE_RSS_KB"
	cpu_row "paced storm" "$agent_paced_CPU" "$agent_paced_SECS" "$agent_paced_RSS_KB"
	if [ -f "$W/agent_sat.kv" ]; then
		cpu_row "unpaced storm" "$agent_sat_CPU" "$agent_sat_SECS" "$agent_sat_RSS_KB"
	fi
	echo
	echo "- Peak RSS (VmHWM): $HWM_MIB MiB; VmRSS at the end: $(fmt %.1f "$(calc "$END_RSS_KB / 1024")") MiB;"
	echo "  katascope_agent_memory_rss_bytes at the end: $(fmt %.1f "$(mib "$SELF_RSS")") MiB"
	echo "- BPF maps held by the agent (kernel memory, not in RSS): $(fmt %.1f "$(mib "$MAP_BYTES")") MiB (bytes_memlock)"
	echo "- The agent's user-space CPU is only part of its cost: the BPF programs below run in"
	echo "  the context of the traced processes and are charged to them."
	echo
	echo "### BPF programs"
	echo
	echo "From \`bpftool prog show\` run_cnt and run_time_ns, before/after each storm, for the"
	echo "agent's handle_* programs (found through /proc/PID/fdinfo). CPU % is of one CPU."
	echo
	echo "Paced (${agent_paced_SECS%.*} s):"
	echo
	echo "| program | runs | runs/s | ns/run | CPU % |"
	echo "|---|---|---|---|---|"
	prog_table "$W/agent_paced.p0" "$W/agent_paced.p1" "$agent_paced_SECS"
	if [ -f "$W/agent_sat.kv" ]; then
		echo
		echo "Unpaced (${agent_sat_SECS%.*} s):"
		echo
		echo "| program | runs | runs/s | ns/run | CPU % |"
		echo "|---|---|---|---|---|"
		prog_table "$W/agent_sat.p0" "$W/agent_sat.p1" "$agent_sat_SECS"
	fi
	echo
	if [ ${#FAILS[@]} -eq 0 ]; then
		echo "Result: all targets met."
	else
		echo "Result: **targets missed**: $(IFS=';'; echo "${FAILS[*]}")."
	fi
} >"$WORK/report.md"

cat "$WORK/report.md"

if [ "$WRITE" = 1 ]; then
	BEGIN='<!-- bench/run.sh results: begin -->'
	END='<!-- bench/run.sh results: end -->'
	mkdir -p "$(dirname "$DOC")"
	if [ ! -f "$DOC" ] || ! grep -qF "$BEGIN" "$DOC"; then
		{ [ -f "$DOC" ] && cat "$DOC" && echo; echo "$BEGIN"; echo "$END"; } >"$WORK/doc.new"
		cp "$WORK/doc.new" "$DOC"
	fi
	awk -v b="$BEGIN" -v e="$END" -v r="$WORK/report.md" '
		$0 == b { print; while ((getline l < r) > 0) print l; skip = 1; next }
		$0 == e { skip = 0 }
		!skip' "$DOC" >"$WORK/doc.new"
	cp "$WORK/doc.new" "$DOC"
	log "results written to $DOC"
fi

if [ ${#FAILS[@]} -ne 0 ]; then
	log "targets missed: $(IFS=';'; echo "${FAILS[*]}")"
	exit 3
fi
exit 0
