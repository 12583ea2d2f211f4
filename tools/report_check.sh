#!/usr/bin/env bash
# tools/report_check.sh GLASSBOX DIR: renders `glassbox report --quick` into DIR and loads
# DIR/index.html in headless Chromium (Debian's chromium) with every host name unresolvable; fails
# on any console error, any failed load and any request that leaves the folder; saves a full-page
# screenshot as DIR/screenshot.png. Exit 77 (skipped) without chromium or Fashion-MNIST.
set -euo pipefail
glassbox=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
browser=$(command -v chromium || command -v chromium-browser || true)
[ -n "$browser" ] || { echo "skipped: chromium is not installed (apt-get install chromium)"; exit 77; }
[ -d /usr/share/datasets/fashion-mnist ] || { echo "skipped: dataset-fashion-mnist is not installed"; exit 77; }
"$glassbox" report --quick --out "$dir"
log="$dir/chromium.log"
# An earlier run's screenshot and log must not pass for this run's.
rm -f "$dir/screenshot.png" "$log"
# --enable-logging=stderr prints the page's console messages ("CONSOLE(...)") and failed loads.
status=0
"$browser" --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
  --host-resolver-rules="MAP * ~NOTFOUND" --enable-logging=stderr --v=0 \
  --window-size=1200,12000 --screenshot="$dir/screenshot.png" "file://$dir/index.html" 2>"$log" >/dev/null || status=$?
[ $status -eq 0 ] || { echo "report-check: chromium failed (exit $status); see $log"; exit 1; }
[ -s "$dir/screenshot.png" ] || { echo "report-check: chromium wrote no screenshot; see $log"; exit 1; }
bad=$(grep -E 'CONSOLE|Failed to load|net::ERR_|Not allowed to load' "$log" || true)
outside=$(grep -oE '(https?|file)://[^ "]+' "$log" | grep -v "^file://$dir" || true)
if [ -n "$bad$outside" ]; then
  echo "report-check: the page is not self-contained or logs errors:"
  printf '%s\n%s\n' "$bad" "$outside"
  exit 1
fi
echo "report-check: $dir/index.html loads with no console error and no request outside $dir; screenshot $dir/screenshot.png"
