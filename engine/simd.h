// Hot loops that the compiler vectorizes are compiled twice, for the baseline x86-64 (SSE2) and
// for AVX2, and the loader picks the one the CPU runs (GCC target_clones): twice the vector width
// on any recent CPU, while the binary still runs on old ones. Internal to engine/.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GB_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define GB_CLONES
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
