#!/usr/bin/env bash
# Here, before a loan (tools/gpu/README.md, "The next loan"): what stage.sh cannot check on the device, whose copy of the
# tree arrives without .git. Refuses tracked files that differ from HEAD (the results' label, COB_PAPER_GIT_COMMIT, must
# be the code that runs), missing packed data or wheel, and a call that would carry more than the device takes (64 MiB:
# the tracked and untracked-not-ignored files, plus what the call carries); lists untracked files that would travel;
# prints the label to paste into the calls.
#   bash tools/gpu/preflight.sh
set -u -o pipefail
cd "$(git rev-parse --show-toplevel)" || exit 1
git diff --quiet HEAD || { echo "tracked files differ from HEAD: commit them first (the results' label must be the code that runs):"
                           git diff --stat HEAD; exit 1; }
untracked=$(git ls-files -o --exclude-standard)
[ -z "$untracked" ] || printf 'these untracked files travel too, though not in HEAD:\n%s\n' "$untracked"
for part in .data/packed/a .data/packed/b; do
  [ -f "$part/manifest.json" ] || { echo "no $part: run python tools/gpu/pack_cifar10.py pack first"; exit 1; }
done
ls .whl/torch_pruning-*.whl >/dev/null 2>&1 ||
  { echo "no .whl/torch_pruning-*.whl (the beyond experiment's toolkit arms): see the README's pip download line"; exit 1; }
bytes() { du -cbs "$@" | tail -1 | cut -f1; }
tree=$(git ls-files -z -co --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
if [ -d shared ] && git check-ignore -q shared; then tree=$((tree + $(bytes shared))); fi     # shared/ travels, ignored or not
limit=$((64 * 1024 * 1024)) over=0
for call in "1 .data/packed/a" "2 .data/packed/b .whl" "3"; do
  set -- $call; n=$1; shift
  carried=0; if [ $# -gt 0 ]; then carried=$(bytes "$@"); fi
  total=$((tree + carried))
  awk -v n="$n" -v c="${*:-nothing}" -v t="$total" -v l="$limit" \
    'BEGIN { printf "call %s carries %s: %.2f MiB with the tree, %.2f MiB to spare of 64\n", n, c, t / 2^20, (l - t) / 2^20 }'
  [ "$total" -le "$limit" ] || over=1
done
[ "$over" = 0 ] || { echo "a call is over 64 MiB: the device would refuse it; carry less, or ignore files that need not travel"; exit 1; }
echo "COB_PAPER_GIT_COMMIT=$(git rev-parse HEAD)"
