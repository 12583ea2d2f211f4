// The one threading policy of glassbox: parallelism comes from OpenBLAS inside GEMM, and only
// from there. The engine's own loops (im2col, elementwise ops, pooling) run on the calling
// thread, so OpenBLAS's threads never compete with ours for the cores. set_threads() is the one
// knob (`--threads`, default = the number of cores).
#pragma once

namespace gb {
void set_threads(int n);  // n <= 0: all cores
int threads();
int hardware_threads();
}  // namespace gb
