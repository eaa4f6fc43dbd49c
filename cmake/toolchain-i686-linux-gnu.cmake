# Build for i386 with Debian's g++-i686-linux-gnu; GoogleTest from Debian
# multiarch packages (libgtest-dev:i386) in /usr/lib/i386-linux-gnu.  An
# x86-64 kernel runs the result natively once libc6:i386 and libstdc++6:i386
# are installed (scripts/cross.sh i386), so no emulator is set.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR i686)
set(CMAKE_C_COMPILER i686-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER i686-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE i386-linux-gnu)
