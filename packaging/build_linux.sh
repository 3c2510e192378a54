#!/usr/bin/env bash
# Builds the Linux bundle, its tar.gz and its .deb from a clean virtual environment under build/.
#
#   packaging/build_linux.sh [--torch auto|cuda|cpu] [--clean]
#
#   --torch auto  (default) torch and torchvision as pip resolves them from its configured indexes
#                 (PyPI gives the CUDA build on Linux)
#   --torch cuda  the same, and fail unless the torch that was installed is a CUDA build
#   --torch cpu   torch and torchvision from PyTorch's CPU index (needs that index to be reachable)
#   --clean       make the virtual environment anew even if build/ has a ready one for this choice
#
# Writes dist/feature-map-explorer/ (run dist/feature-map-explorer/feature-map-explorer),
# dist/feature-map-explorer-VERSION-linux-x86_64.tar.gz and dist/feature-map-explorer_VERSION_amd64.deb.
# Environment: PYTHON (default python3, 3.11+ built with --enable-shared), GZIP_LEVEL (tar.gz,
# default 6), DEB_COMPRESSION (dpkg-deb -Z and -z, default "gzip 1": a CUDA bundle is gigabytes and
# its libraries hardly compress, so a fast level costs little size; "zstd 3" is smaller but older
# dpkg cannot read it).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

# Pinned: a new PyInstaller or hooks release changes what lands in the bundle.
PYINSTALLER_PIN="pyinstaller==6.22.3"
HOOKS_PIN="pyinstaller-hooks-contrib==2026.9"
CPU_INDEX="https://download.pytorch.org/whl/cpu"

TORCH=auto
CLEAN=0
while [ $# -gt 0 ]; do
    case "$1" in
        --torch) TORCH="${2:-}"; shift 2 ;;
        --torch=*) TORCH="${1#*=}"; shift ;;
        --clean) CLEAN=1; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build_linux.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$TORCH" in auto|cuda|cpu) ;; *) echo "build_linux.sh: --torch is auto, cuda or cpu, not '$TORCH'" >&2; exit 2 ;; esac

PYTHON="${PYTHON:-python3}"
GZIP_LEVEL="${GZIP_LEVEL:-6}"
read -r DEB_Z DEB_LEVEL <<<"${DEB_COMPRESSION:-gzip 1}"
APP=feature-map-explorer
VERSION="$("$PYTHON" -c "import sys; sys.path.insert(0, 'packaging'); import bundle; print(bundle.version())")"
VENV="build/venv-$TORCH"
START=$(date +%s)
step() { printf '[%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }

# 1. The clean environment: only what the app needs, PyInstaller and its hooks. It is kept between
#    runs (the stamp names what went in) because installing torch takes minutes.
DEPS="$("$PYTHON" - <<'EOF'
import tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print("\n".join(d for d in deps if not d.startswith(("torch", "torchvision"))))
EOF
)"
STAMP="$(printf '%s\n' "$PYINSTALLER_PIN" "$HOOKS_PIN" "$TORCH" "$DEPS" | sha256sum | cut -c1-16)"
if [ "$CLEAN" = 1 ] || [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$STAMP" ]; then
    step "creating $VENV (torch: $TORCH)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "$PYINSTALLER_PIN" "$HOOKS_PIN"
    if [ "$TORCH" = cpu ]; then
        "$VENV/bin/python" -m pip install -q torch torchvision --index-url "$CPU_INDEX"
    else
        "$VENV/bin/python" -m pip install -q torch torchvision
    fi
    # The app's other dependencies; the app itself is analysed from this source tree, not installed.
    printf '%s\n' "$DEPS" > build/requirements-app.txt
    "$VENV/bin/python" -m pip install -q -r build/requirements-app.txt
    echo "$STAMP" > "$VENV/.stamp"
else
    step "reusing $VENV"
fi
CUDA="$("$VENV/bin/python" -c "import torch; print(torch.version.cuda or '')")"
if [ "$TORCH" = cuda ] && [ -z "$CUDA" ]; then
    echo "build_linux.sh: --torch cuda, but the torch pip installed is a CPU build" >&2; exit 1
fi
if [ "$TORCH" = cpu ] && [ -n "$CUDA" ]; then
    echo "build_linux.sh: --torch cpu, but the torch pip installed is built for CUDA $CUDA" >&2; exit 1
fi
step "torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)'), CUDA ${CUDA:-none}"

# 2. PyInstaller, one-folder.
step "PyInstaller"
rm -rf "dist/$APP"
"$VENV/bin/python" -m PyInstaller --noconfirm --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/linux/$APP.spec
"dist/$APP/$APP" --version
step "bundle: $(du -sh "dist/$APP" | cut -f1)"

# 3. The tar.gz of that folder.
TARBALL="dist/$APP-$VERSION-linux-x86_64.tar.gz"
GZ="gzip"; command -v pigz >/dev/null && GZ="pigz"
tar -C dist -cf - "$APP" | "$GZ" "-$GZIP_LEVEL" > "$TARBALL"
step "$TARBALL: $(du -sh "$TARBALL" | cut -f1)"

# 4. The .deb: the folder under /opt, a launcher in /usr/bin, a .desktop entry, the icon in every
#    size. Depends lists the system libraries Qt's window needs (explorer/platform_check.py), so
#    apt installs them.
DEBROOT="build/deb/$APP"
rm -rf build/deb
mkdir -p "$DEBROOT/DEBIAN" "$DEBROOT/opt" "$DEBROOT/usr/bin" "$DEBROOT/usr/share/applications"
cp -al "dist/$APP" "$DEBROOT/opt/$APP" 2>/dev/null || cp -a "dist/$APP" "$DEBROOT/opt/$APP"   # hard links: no second copy of gigabytes
install -m 0755 packaging/linux/launcher.sh "$DEBROOT/usr/bin/$APP"
install -m 0644 packaging/linux/$APP.desktop "$DEBROOT/usr/share/applications/$APP.desktop"
for png in resources/icons/$APP-*.png; do
    size="${png##*-}"; size="${size%.png}"
    install -D -m 0644 "$png" "$DEBROOT/usr/share/icons/hicolor/${size}x${size}/apps/$APP.png"
done
install -D -m 0644 "resources/icons/$APP.svg" "$DEBROOT/usr/share/icons/hicolor/scalable/apps/$APP.svg"
DEPENDS="$("$PYTHON" -c "import explorer.platform_check as p; print(', '.join(p.debian_depends()))")"
cat > "$DEBROOT/DEBIAN/control" <<EOF
Package: $APP
Version: $VERSION
Architecture: amd64
Maintainer: Feature Map Explorer <feature-map-explorer@users.noreply.github.com>
Installed-Size: $(du -sk --exclude=DEBIAN "$DEBROOT" | cut -f1)
Depends: $DEPENDS
Section: science
Priority: optional
Homepage: https://github.com/feature-map-explorer/feature-map-explorer
Description: see what convolutional networks do
 Stack layers (convolution, pooling, activations, normalisation, linear) in a
 side panel, run them through torch on an image or CIFAR-10 and look at every
 channel of every layer, every tensor shape and the output-size formula.
 Self-contained: Python, PySide6 and torch ${CUDA:+(CUDA $CUDA) }are inside /opt/$APP.
EOF
DEB="dist/${APP}_${VERSION}_amd64.deb"
dpkg-deb --root-owner-group -Z"$DEB_Z" -z"$DEB_LEVEL" --build "$DEBROOT" "$DEB" >/dev/null
rm -rf build/deb
step "$DEB: $(du -sh "$DEB" | cut -f1)"
step "done"
