# shellcheck shell=bash
# Shared by scripts/bench-codec.sh and scripts/bench-session.sh (sourced): reading
# criterion's estimates and describing the machine in their reports.

# criterion_median_ns FILE: the median point estimate, in ns, from a criterion
# new/estimates.json.
criterion_median_ns() {
    sed -E 's/.*"median":\{"confidence_interval":\{[^}]*\},"point_estimate":([0-9.eE+-]+).*/\1/' "$1"
}

# machine_lines LOAD_BEFORE: the report's machine, load, kernel, compiler and date lines.
machine_lines() {
    local cpu
    cpu="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)"
    echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}"
    echo "- load average (1, 5, 15 min) before the run: $1"
    echo "- kernel: $(uname -sr)"
    echo "- rustc: $(rustc --version)"
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
