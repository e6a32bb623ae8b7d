# Sourced by scripts/ab.sh and scripts/profile.sh: the cases that decide hot-path changes
# (loadgen arguments by name; 64 B payloads are added by the caller) and the broker
# configuration they run against.

declare -A cases=(
    [pairs10-q0]="pairs --n 10 --qos 0 --rate max"
    [pairs10-q1]="pairs --n 10 --qos 1 --rate max --inflight 20"
    [fanout50-q0]="fanout --subs 50 --pubs 1 --qos 0 --rate max"
    [fanout50-q1]="fanout --subs 50 --pubs 1 --qos 1 --rate max --inflight 20"
    [pairs1000-50hz-q0]="pairs --n 1000 --qos 0 --rate 50"
    [pairs1000-50hz-q1]="pairs --n 1000 --qos 1 --rate 50 --inflight 20"
    [idle10k]="conn --n 10000 --rate 5000 --hold 3"
)

# write_unlimited_conf FILE: no artificial limits, as in scripts/bench.sh.
write_unlimited_conf() {
    cat >"$1" <<'CONF'
# No artificial limits, as in scripts/bench.sh.
max_queued_messages 1000000000
max_inflight_messages 0
CONF
}
