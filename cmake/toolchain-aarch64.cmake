# Cross-building for aarch64-linux-gnu with Debian's cross compiler against a Debian 12 sysroot made by
# scripts/sysroot.sh: cmake -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake -DTESSERA_SYSROOT=DIR
# (or $TESSERA_SYSROOT). Tests and benchmarks are not built (CMAKE_CROSSCOMPILING).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(TESSERA_TRIPLET aarch64-linux-gnu)
include(${CMAKE_CURRENT_LIST_DIR}/cross-common.cmake)
