#!/usr/bin/env bash
# The main job (tools/dev demo): until training lands, describe the LeNet-5 preset.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/build/tools/glassbox" info lenet5 "$@"
