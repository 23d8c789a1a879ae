# Shared by fuzz/run and fuzz/sanitize-gcc (sourced, not run): the interpreter, the Cython used to
# build, and a sanitized build of the kernel that never touches the normal in-place one.
#
# A sanitized build lives in $WORK/build-<name>/: setuptools' objects and the extension under
# temp/ and lib/, and site/iotvideo_signaling/, a copy of src/iotvideo_signaling without any
# compiled module plus the sanitized one. Putting site/ first on PYTHONPATH makes the package,
# its Python modules and the sanitized kernel one importable unit; fuzz/sanitized.py then checks
# that this is what a process really imported.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

pick_python() {  # the active virtualenv's interpreter, else python3
    if [ -n "${PYTHON:-}" ]; then
        :
    elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
        PYTHON="$VIRTUAL_ENV/bin/python"
    else
        PYTHON="$(command -v python3)"
    fi
    export PYTHON
}

ensure_cython() {  # Cython in $WORK/tools/cython (the build's own requirement; the venv is left alone)
    CYTHON_PATH="$WORK/tools/cython"
    if ! PYTHONPATH="$CYTHON_PATH" "$PYTHON" -c "import Cython" 2>/dev/null; then
        echo "-- installing Cython into $CYTHON_PATH"
        "$PYTHON" -m pip install --quiet --disable-pip-version-check --target "$CYTHON_PATH" "Cython>=3.0"
    fi
}

# build_sanitized NAME CC CFLAGS LDSHARED: sets SITE to the directory to put first on PYTHONPATH.
build_sanitized() {
    local name="$1" cc="$2" cflags="$3" ldshared="$4"
    local build="$WORK/build-$name"
    echo "-- building the kernel with $cc $cflags into $build"
    rm -rf "$build/lib" "$build/site"
    (
        cd "$ROOT"
        # Cython writes cext/_wire_c.c (the same text for every build); only the objects differ.
        CC="$cc" LDSHARED="$ldshared" CFLAGS="$cflags" IOTVIDEO_SIGNALING_REQUIRE_EXTENSIONS=1 \
            PYTHONPATH="$CYTHON_PATH" "$PYTHON" setup.py --quiet build_ext --force \
            --build-lib "$build/lib" --build-temp "$build/temp"
    )
    mkdir -p "$build/site"
    cp -R "$ROOT/src/iotvideo_signaling" "$build/site/"
    find "$build/site" \( -name '*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +
    cp "$build"/lib/iotvideo_signaling/_wire_c*.so "$build/site/iotvideo_signaling/"
    SITE="$build/site"
}
