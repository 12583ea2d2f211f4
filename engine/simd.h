// Hot loops that the compiler vectorizes are compiled three times, for the baseline x86-64 (SSE2),
// for AVX2 and for AVX-512, and the loader picks the widest the CPU runs (GCC target_clones): the
// binary still runs on old CPUs. AVX-512F includes fused multiply-adds, so that clone may compute
// a*b+c with one rounding where the others round twice: results can differ between CPUs in the
// last bit, never between runs or thread counts on one CPU. The AVX-512 clone holds the 16
// channels of resnet8's first layers in one vector; alternating builds on Zen 5 with glassbox's
// GEMM kernel, it made training 1.03-1.07x faster (resnet8, cifar-convnet). Internal to engine/.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define GB_CLONES
#endif
// Put before a loop whose iterations do not depend on each other through memory, so that the
// compiler vectorizes it without proving that its pointers do not overlap.
#if defined(__clang__)
#if __has_feature(address_sanitizer)
#define GB_IVDEP  // ASan's checks keep clang from vectorizing; the hint would only warn that it failed
#else
#define GB_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#endif
#else
#define GB_IVDEP _Pragma("GCC ivdep")
#endif
// Helpers of a GB_CLONES function: inlined into each clone, so they are compiled for its target.
#define GB_INLINE [[gnu::always_inline]] inline

// Unaligned load and store of a GCC vector type through a 4-byte-aligned, may_alias copy of the
// type: one full-width move. (A memcpy into a vector variable can be compiled as two half-width
// stores to the stack, which the next full-width load then waits on.)
template <class V>
GB_INLINE void load_vec(V& v, const float* p) {
  typedef V U __attribute__((aligned(4), may_alias));
  v = *reinterpret_cast<const U*>(p);
}
template <class V>
GB_INLINE void store_vec(float* p, const V& v) {
  typedef V U __attribute__((aligned(4), may_alias));
  *reinterpret_cast<U*>(p) = v;
}
