#!/usr/bin/env bash
# Regenerate the pictures in img/ from the current code, from the repository root:
#
#   bash img/render.sh [diagrams] [capacity] [dashboard]     (no argument: all three)
#
# diagrams   the architecture diagrams from their Graphviz sources (needs `dot`:
#            apt-get install graphviz)
# capacity   img/capacity.svg from img/capacity.json (which tests.benchmarks.capacity writes)
# dashboard  img/dashboard.png: the dashboard of `recsvc demo` after four minutes of its
#            traffic (tests/benchmarks/dashboard_screenshot.py; needs chromium and
#            chromium-driver: apt-get install chromium chromium-driver)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
what=("$@")
[ ${#what[@]} -gt 0 ] || what=(diagrams capacity dashboard)
for part in "${what[@]}"; do
  case "$part" in
    diagrams)
      for src in architecture_diagram architecture_diagram_demo; do
        dot -Tpng -Gdpi=110 "img/$src.dot" -o "img/$src.png"
      done ;;
    capacity)
      "$python" -m tests.benchmarks.capacity_plot --data img/capacity.json --out img/capacity.svg ;;
    dashboard)
      "$python" -m tests.benchmarks.dashboard_screenshot --out img/dashboard.png ;;
    *)
      echo "unknown picture '$part': expected diagrams, capacity or dashboard" >&2
      exit 2 ;;
  esac
done
