#!/usr/bin/env bash
# Regenerate the PNG diagrams from their Graphviz sources (needs `dot`: apt-get install graphviz).
set -euo pipefail
cd "$(dirname "$0")"
for src in architecture_diagram architecture_diagram_demo; do
  dot -Tpng -Gdpi=110 "$src.dot" -o "$src.png"
done
