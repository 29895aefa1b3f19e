# Shared by cmake/toolchain-*.cmake: TESSERA_TRIPLET names the target, TESSERA_SYSROOT (a cache
# variable or $TESSERA_SYSROOT) the Debian root whose multiarch dirs hold the -dev packages.
if(NOT TESSERA_SYSROOT)
  set(TESSERA_SYSROOT "$ENV{TESSERA_SYSROOT}")
endif()
if(NOT TESSERA_SYSROOT OR NOT EXISTS "${TESSERA_SYSROOT}/usr/include")
  message(FATAL_ERROR "TESSERA_SYSROOT must name a sysroot (scripts/sysroot.sh ARCH prints one)")
endif()
# Try-compiles run in projects of their own: hand them the sysroot too.
set(CMAKE_TRY_COMPILE_PLATFORM_VARIABLES TESSERA_SYSROOT)
set(CMAKE_SYSROOT "${TESSERA_SYSROOT}")
set(CMAKE_C_COMPILER ${TESSERA_TRIPLET}-gcc)
set(CMAKE_FIND_ROOT_PATH "${TESSERA_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_LIBRARY_ARCHITECTURE ${TESSERA_TRIPLET})

# pkg-config: the sysroot's .pc files only, their paths prefixed with it.
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${TESSERA_SYSROOT}")
set(ENV{PKG_CONFIG_LIBDIR}
    "${TESSERA_SYSROOT}/usr/lib/${TESSERA_TRIPLET}/pkgconfig:${TESSERA_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Open MPI without its mpicc wrapper (an ARM program here; the host's would give x86 paths).
set(MPI_SKIP_COMPILER_WRAPPER TRUE CACHE BOOL "")
set(MPI_C_HEADER_DIR "${TESSERA_SYSROOT}/usr/lib/${TESSERA_TRIPLET}/openmpi/include" CACHE PATH "")
set(MPI_C_LIB_NAMES mpi CACHE STRING "")
set(MPI_mpi_LIBRARY "${TESSERA_SYSROOT}/usr/lib/${TESSERA_TRIPLET}/openmpi/lib/libmpi.so" CACHE FILEPATH "")
# The libraries' own dependencies (Open MPI's, curl's) are found at link time in the sysroot.
set(CMAKE_EXE_LINKER_FLAGS_INIT
    "-Wl,-rpath-link,${TESSERA_SYSROOT}/usr/lib/${TESSERA_TRIPLET}:${TESSERA_SYSROOT}/lib/${TESSERA_TRIPLET}:${TESSERA_SYSROOT}/usr/lib/${TESSERA_TRIPLET}/openmpi/lib")
