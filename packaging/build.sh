#!/usr/bin/env bash
# `make package`: build the app bundle for this OS into dist/ and smoke-test it headless.
#   Linux: dist/d2sd-desktop/ and dist/d2sd-desktop-VERSION-linux-ARCH.tar.gz
#   macOS: "dist/D2SD Desktop.app" and dist/d2sd-desktop-VERSION-macos-ARCH.zip
# Windows has packaging/windows/build.ps1. packaging/README.md explains the steps.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=build/package-venv
WHEELS=build/wheels
LLAMA=$(grep -o '"llama-cpp-python==[^"]*"' pyproject.toml | tr -d '"')  # the pins the app declares
TORCH=$(grep -o '"torch[<>=][^"]*"' pyproject.toml | tr -d '"')
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
ARCH=$(uname -m)

case "$(uname -s)" in
    # No -march=native (it would crash on older CPUs): every x86 CPU variant is built, and the bundle
    # loads the best one this CPU runs at start (rthook_ggml_backends.py). The app has no use for mtmd.
    Linux) OS=linux
           CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DLLAVA_BUILD=OFF" ;;
    # Apple Silicon: the Metal backend; the compiler's default arm64 target runs on every M-series CPU.
    Darwin) OS=macos
            CMAKE_ARGS="-DGGML_METAL=on -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF" ;;
    *) echo "packaging/build.sh builds on Linux and macOS; on Windows run packaging/windows/build.ps1" >&2
       exit 1 ;;
esac
export CMAKE_ARGS

# 1. llama-cpp-python from source, once: the wheel in build/wheels is the cache (delete it to rebuild).
#    --no-cache-dir because pip's own wheel cache may hold the dev venv's -march=native build of the
#    same version, which must not be picked up here, nor this build land there.
if ! ls $WHEELS/llama_cpp_python-*.whl >/dev/null 2>&1; then
    [ -x $VENV/bin/python ] || python3 -m venv $VENV
    echo "Building $LLAMA with CMAKE_ARGS=\"$CMAKE_ARGS\" (a long compile, once)..."
    $VENV/bin/python -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python -w $WHEELS "$LLAMA"
fi
WHEEL=$(ls $WHEELS/llama_cpp_python-*.whl)

# 2. The build venv, made afresh when the wheel or pyproject.toml is newer: that wheel first, so it
#    already meets the project's pin, then the app with PyInstaller.
PY=$VENV/bin/python
if [ ! $VENV/.installed -nt "$WHEEL" ] || [ ! $VENV/.installed -nt pyproject.toml ]; then
    rm -rf $VENV && python3 -m venv $VENV
    $PY -m pip install -q --disable-pip-version-check --upgrade pip
    $PY -m pip install -q "$WHEEL"
    if [ $OS = linux ]; then
        # PyPI's Linux torch is the CUDA build, whose nvidia-* wheels add gigabytes; the bundle's
        # drafters run on the CPU. Where PyTorch's CPU index is out of reach, pip's usual sources decide.
        $PY -m pip install -q --retries 1 "$TORCH" --index-url https://download.pytorch.org/whl/cpu ||
            echo "warning: PyTorch's CPU index unreachable; torch comes from pip's usual sources" >&2
    fi
    $PY -m pip install -q -e '.[package]'
    touch $VENV/.installed
fi

# 3. The bundle. The icon files for macOS/Windows are drawn at build time (make_icon.py).
mkdir -p build/icon
if [ $OS = macos ]; then
    iconset=build/icon/d2sd-desktop.iconset
    mkdir -p $iconset
    for size in 16 32 128 256 512; do
        $PY packaging/make_icon.py $iconset/icon_${size}x${size}.png $size
        $PY packaging/make_icon.py $iconset/icon_${size}x${size}@2x.png $((size * 2))
    done
    iconutil -c icns -o build/icon/d2sd-desktop.icns $iconset
fi
$VENV/bin/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/d2sd-desktop.spec
if [ $OS = macos ]; then
    EXE="dist/D2SD Desktop.app/Contents/MacOS/d2sd-desktop"
else
    EXE=dist/d2sd-desktop/d2sd-desktop
fi

# 4. Smoke test: the bundle, started offscreen from another folder, loads the tiny test model and generates.
mkdir -p build/smoke
$PY -c 'import sys; from pathlib import Path; from tests.tiny_gguf import write_tiny_gguf
write_tiny_gguf(Path(sys.argv[1]))' build/smoke/tiny.gguf
(cd build/smoke && QT_QPA_PLATFORM=offscreen "../../$EXE" --smoke-test tiny.gguf)

# 5. The archive users download.
if [ $OS = linux ]; then
    stage=build/tarball/d2sd-desktop-$VERSION
    rm -rf build/tarball && mkdir -p $stage
    cp -a dist/d2sd-desktop $stage/
    cp packaging/linux/d2sd-desktop.desktop packaging/linux/install.sh $stage/
    cp assets/icon.png $stage/d2sd-desktop.png
    tar -C build/tarball -czf dist/d2sd-desktop-$VERSION-linux-$ARCH.tar.gz d2sd-desktop-$VERSION
    echo "Built dist/d2sd-desktop-$VERSION-linux-$ARCH.tar.gz ($(du -sh dist/d2sd-desktop | cut -f1) unpacked)"
else
    ditto -c -k --keepParent "dist/D2SD Desktop.app" dist/d2sd-desktop-$VERSION-macos-$ARCH.zip
    echo "Built \"dist/D2SD Desktop.app\" and dist/d2sd-desktop-$VERSION-macos-$ARCH.zip"
fi
