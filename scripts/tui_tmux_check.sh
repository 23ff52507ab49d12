#!/usr/bin/env bash
# Drives `plantkit report --tui` in a real terminal (tmux) over an artifacts root: opens,
# sorts, searches, drills into a model, compares two models and quits, checking the screen
# after each step. Exit 0 when every check passed.
#
#   scripts/tui_tmux_check.sh [ARTIFACTS] [WIDTHxHEIGHT]
#   (ARTIFACTS default: a fresh `plantkit demo --quick` under a temporary folder)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
plantkit="${PLANTKIT:-$here/.venv/bin/plantkit}"
size="${2:-80x24}"
work="$(mktemp -d)"
trap 'tmux -L plantkit-tui kill-server 2>/dev/null || true; rm -rf "$work"' EXIT
art="${1:-}"
if [ -z "$art" ]; then
    art="$work/demo"
    "$plantkit" demo --quick --quiet --out "$art" > /dev/null
fi
tm() { tmux -L plantkit-tui "$@"; }
screen() { tm capture-pane -t tui -p; }
key() { tm send-keys -t tui "$@"; sleep 0.5; }  # one key at a time: Esc+q would read as Alt-q
expect() {  # expect TEXT WHAT: wait up to 30 s for TEXT on the screen
    for _ in $(seq 60); do
        if screen | grep -qF -- "$1"; then echo "ok: $2"; return 0; fi
        sleep 0.5
    done
    echo "FAILED: $2 (no '$1' on screen)"; screen; exit 1
}
tm new-session -d -s tui -x "${size%x*}" -y "${size#*x}" \
    "'$plantkit' --artifacts '$art' report --tui; echo \"exit=\$?\" > '$work/exit'; sleep 30"
tm set-option -s escape-time 0  # tmux would hold an Esc 500 ms to see if a sequence follows
expect "Leaderboard · test" "the leaderboard opens"
key s
expect "by top-5 ▼" "s sorts by the next column"
key r
expect "by top-5 ▲" "r reverses"
key Enter
expect "Species" "Enter opens the model screen"
expect "species · by train ▼" "its species table"
key / ; key D; key a; key u
expect "search 'Dau'" "/ searches species"
key Escape
key t
expect "GFLOPs expected" "t shows the summary tab"
key Escape
expect "Leaderboard · test" "Esc goes back"
key m; key Up; key m; key c  # the cursor is on the last row: top-5 ascending
expect "top-1 per species" "m, m, c compare two models"
expect "wins" "the comparison counts the species won"
key Escape
expect "Leaderboard · test" "back from the comparison"
key q
for _ in $(seq 20); do [ -f "$work/exit" ] && break; sleep 0.5; done
[ "$(cat "$work/exit" 2>/dev/null)" = "exit=0" ] || { echo "FAILED: q did not quit with 0"; exit 1; }
echo "ok: q quits (exit 0)"
