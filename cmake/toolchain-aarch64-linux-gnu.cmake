# Cross-build for arm64 with Debian's g++-aarch64-linux-gnu; libraries such as
# GoogleTest come from Debian multiarch packages (libgtest-dev:arm64) in
# /usr/lib/aarch64-linux-gnu.  Test programs run under qemu-user
# (qemu-user-static, scripts/cross.sh arm64): ctest and gtest_discover_tests
# go through CMAKE_CROSSCOMPILING_EMULATOR, with the target's libc and
# libstdc++ taken from the cross toolchain's /usr/aarch64-linux-gnu.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static -L /usr/aarch64-linux-gnu)
