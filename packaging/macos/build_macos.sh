#!/usr/bin/env bash
# Builds the macOS app and its DMG from a clean virtual environment under build/.
#   packaging/macos/build_macos.sh
# Writes "dist/Feature Map Explorer.app" and dist/feature-map-explorer-VERSION-macos-ARCH.dmg.
# The recipe: PyInstaller (pinned, as on Linux) -> .app -> a read-only compressed DMG holding the
# app and a link to /Applications (hdiutil, part of macOS). The app is ad-hoc signed only; a
# Developer ID signature and notarisation need the project's Apple certificate (not set up).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
PYINSTALLER_PIN="pyinstaller==6.22.3"
HOOKS_PIN="pyinstaller-hooks-contrib==2026.9"
PYTHON="${PYTHON:-python3}"
VENV=build/venv-macos

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$PYINSTALLER_PIN" "$HOOKS_PIN" torch torchvision
"$VENV/bin/python" - > build/requirements-app.txt <<'PY'
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join(d for d in deps if not d.startswith("torch")))
PY
"$VENV/bin/python" -m pip install -q -r build/requirements-app.txt

# The icon: an .icns from the project's PNGs (iconutil is part of macOS).
ICONSET=build/feature-map-explorer.iconset
rm -rf "$ICONSET" && mkdir -p "$ICONSET"
for size in 16 32 128 256 512; do
    cp "resources/icons/feature-map-explorer-$size.png" "$ICONSET/icon_${size}x${size}.png"
done
for size in 16 128 256; do
    cp "resources/icons/feature-map-explorer-$((size * 2)).png" "$ICONSET/icon_${size}x${size}@2x.png"
done
iconutil -c icns "$ICONSET" -o build/feature-map-explorer.icns

"$VENV/bin/python" -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/macos/feature-map-explorer.spec
APP="dist/Feature Map Explorer.app"
codesign --force --deep --sign - "$APP"
"$APP/Contents/MacOS/feature-map-explorer" --version

VERSION="$("$PYTHON" -c "import sys; sys.path.insert(0, 'packaging'); import bundle; print(bundle.version())")"
STAGE=build/dmg
rm -rf "$STAGE" && mkdir -p "$STAGE"
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
DMG="dist/feature-map-explorer-$VERSION-macos-$(uname -m).dmg"
rm -f "$DMG"
hdiutil create -volname "Feature Map Explorer" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
echo "$DMG"
