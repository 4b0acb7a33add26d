#!/usr/bin/env bash
# cmake --install gives a usable library: headers, shared and static
# libraries, a pkg-config file and a CMake package that programs build with.
# (Not in sanitizer builds: outside programs do not load the sanitizer runtime.)
# ipcx-test-labels: nosan
set -u
build=$(dirname "$1")
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null || fail "cmake --install"
libdir=$(ls -d "$tmp"/prefix/lib*/ | head -1)
[ -f "$tmp/prefix/include/ipcx/ipcx.h" ] || fail "headers not installed"
ls "$libdir"/libipcx.so.0* >/dev/null && [ -f "$libdir/libipcx.a" ] || fail "libraries"
# Only ipcx_ symbols are exported.
bad=$(nm -D --defined-only "$libdir"/libipcx.so | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^ipcx_' | grep -v '^IPCX_')
[ -z "$bad" ] || fail "exported non-ipcx symbols: $bad"
# pkg-config
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Werror "$src/examples/ring_pingpong.c" $(pkg-config --cflags --libs ipcx) \
	-o "$tmp/pc" || fail "build with pkg-config"
LD_LIBRARY_PATH="$libdir" timeout 20 "$tmp/pc" >/dev/null || fail "pkg-config build runs"
# CMake package
mkdir -p "$tmp/cm"
cat > "$tmp/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.25)
project(consumer C)
find_package(ipcx 0.1 REQUIRED)
add_executable(pp "$src/examples/ring_pingpong.c")
target_link_libraries(pp PRIVATE ipcx::ipcx)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null || fail "find_package"
cmake --build "$tmp/cm/b" >/dev/null || fail "build with the CMake package"
LD_LIBRARY_PATH="$libdir" timeout 20 "$tmp/cm/b/pp" >/dev/null || fail "CMake build runs"
echo "install: ok"
