// Denormal floats flushed to zero: what `torch.set_flush_denormal(True)` does (the FTZ and DAZ
// bits of the calling thread's MXCSR, where the CPU has them). Threads started afterwards
// inherit the setting, so it is made before libtorch's OpenMP pool and the loaders' threads
// exist.
//
// Errors follow build-support/c_abi.h.

#include <ATen/Context.h>

#include "c_abi.h"

extern "C" char* tricks_set_flush_denormal(bool on, bool* supported) {
  return tricks_abi::guarded([&] { *supported = at::globalContext().setFlushDenormal(on); });
}
