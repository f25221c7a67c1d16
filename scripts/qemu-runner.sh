#!/usr/bin/env bash
# Cargo's runner for the aarch64 suite (scripts/test-aarch64.sh): runs one
# test binary under qemu-aarch64-static, and guards against one fault of
# the emulator, not of webterm.
#
# qemu-user 7.2 (Debian 12) can deadlock a child it forks for a guest with
# several threads. The guest's posix_spawn or fork becomes a fork in qemu,
# and now and then the child blocks on one of qemu's own locks before it
# gets to exec: it stays a copy of its parent (the same command line), in a
# futex wait, forever. Whatever spawned it then waits forever too (seen
# once in the harden tests, 2026-12-01: the test's own webterm server never
# started). A real spawn execs within milliseconds, so the signature is
# exact: a process of this run with its parent's command line, still so
# after STUCK_AFTER seconds.
#
# When that is seen, the whole run (its process group) is killed and the
# binary is run once more, saying so on stderr. A second deadlock fails,
# as does every other failure or hang.
set -uo pipefail

STUCK_AFTER=${STUCK_AFTER:-60}
QEMU=${QEMU:-qemu-aarch64-static}
# Each background job gets its own process group, which a deadlock's
# clean-up kills whole: the test binary and the servers it started (their
# shells follow by their death signal).
set -m

# Prints the pid of a process in group $1 that has been a copy of its
# parent for STUCK_AFTER seconds, if there is one.
stuck_in() {
    local c ppid age
    for c in $(pgrep -g "$1"); do
        read -r ppid age < <(ps -o ppid=,etimes= -p "$c") || continue
        if ((age >= STUCK_AFTER)) && cmp -s "/proc/$c/cmdline" "/proc/$ppid/cmdline"; then
            echo "$c"
            return
        fi
    done
}

# Runs the binary and returns its status; sets `deadlocked` if the run was
# killed for a deadlock.
deadlocked=false
run() {
    deadlocked=false
    local marker pid watcher status
    marker=$(mktemp)
    rm -f "$marker"
    "$QEMU" "$@" &
    pid=$!
    (
        while kill -0 "$pid" 2>/dev/null; do
            sleep 5 # a watchdog's poll, not part of any test
            c=$(stuck_in "$pid")
            if [[ -n $c ]]; then
                echo "qemu-runner: pid $c, forked by pid $(ps -o ppid= -p "$c" | tr -d ' '), has not exec'd" \
                    "in ${STUCK_AFTER}s: qemu-user's fork deadlock; stopping this run of $1" >&2
                touch "$marker"
                kill -KILL -- "-$pid"
                exit
            fi
        done
    ) &
    watcher=$!
    wait "$pid"
    status=$?
    kill -- "-$watcher" 2>/dev/null
    wait "$watcher" 2>/dev/null
    if [[ -e $marker ]]; then
        rm -f "$marker"
        deadlocked=true
    fi
    return "$status"
}

run "$@"
status=$?
if $deadlocked; then
    echo "qemu-runner: running $1 again (once) after qemu-user's fork deadlock" >&2
    run "$@"
    status=$?
    if $deadlocked; then
        echo "qemu-runner: qemu-user deadlocked in fork twice in a row; giving up on $1" >&2
        status=1
    fi
fi
exit "$status"
