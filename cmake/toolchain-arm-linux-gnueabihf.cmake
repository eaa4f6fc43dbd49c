# Cross-build for armhf (32-bit ARM, hard float) with Debian's
# g++-arm-linux-gnueabihf.  scripts/cross.sh armhf builds the library only:
# it checks at compile time that a callout fits in 12 pointers under this
# ABI's alignment rules (an 8-aligned uint64_t), and runs nothing.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)
