#!/usr/bin/env bash
# Stage what the APK contains into one folder for buildozer: main.py, the spec, mobile/, common/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: stage.sh OUT_DIR}
rm -rf "$out" && mkdir -p "$out"
cp "$here/main.py" "$here/buildozer.spec" "$out/"
cp -r "$root/mobile" "$root/common" "$out/"
rm -rf "$out/mobile/android"
find "$out" -name __pycache__ -type d -prune -exec rm -rf {} +
echo "staged in $out: cd $out && buildozer android debug"
