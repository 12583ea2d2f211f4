#pragma once

namespace gb {

// The predicted class of K scores, as torch.argmax picks it: the first maximum, and a NaN counts
// as the maximum (the first NaN), so a NaN logit (allowed with --allow-nonfinite) is never
// hidden behind a finite one. The one argmax for every "predicted class" in glassbox.
template <class T>
int argmax(const T* v, int K) {
  int a = 0;
  for (int k = 1; k < K; ++k)
    if (v[a] == v[a] && !(v[k] <= v[a])) a = k;  // v[k] larger, or v[k] a NaN while v[a] is not
  return a;
}

}  // namespace gb
