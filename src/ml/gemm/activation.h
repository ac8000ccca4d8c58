// Private to the ml layer: the activations lumen's products can apply to their output as each
// tile is finished (Matrix::set_activation; the kernels' activate()).
#pragma once

namespace lumen::ml::gemm {

constexpr int kNoActivation = 0, kGeluTanh = 1, kGeluErf = 2, kQuickGelu = 3;

}  // namespace lumen::ml::gemm
