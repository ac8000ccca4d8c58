// Private to the ml layer: what the image and text towers share. Owning handles for ggml, the
// weight loader (validate every tensor against the config, then create and fill them in the
// requested type), and the transformer building blocks (pre-LN encoder layers as in HF's
// SigLIP/CLIP).
#pragma once

#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gemm/gemm.h"
#include "lumen/ml/image_encoder.h"
#include "lumen/ml/model_config.h"
#include "lumen/ml/safetensors.h"

namespace lumen::ml::detail {

struct CtxFree {
  void operator()(ggml_context* c) const { ggml_free(c); }
};
struct BackendFree {
  void operator()(ggml_backend* b) const { ggml_backend_free(b); }
};
struct BufferFree {
  void operator()(ggml_backend_buffer* b) const { ggml_backend_buffer_free(b); }
};
struct GallocFree {
  void operator()(ggml_gallocr* g) const { ggml_gallocr_free(g); }
};
using CtxPtr = std::unique_ptr<ggml_context, CtxFree>;
using BackendPtr = std::unique_ptr<ggml_backend, BackendFree>;
using BufferPtr = std::unique_ptr<ggml_backend_buffer, BufferFree>;
using GallocPtr = std::unique_ptr<ggml_gallocr, GallocFree>;

// A linear layer (PyTorch's [out, in] weight and its bias): ggml tensors (any of its types, the
// AMX buffer), or packed for lumen's own kernels (gemm/gemm.h). Several projections of the same
// input can be one (q, k and v stacked): one product instead of three.
struct Linear {
  ggml_tensor* w = nullptr;
  ggml_tensor* b = nullptr;
  std::unique_ptr<gemm::Matrix> packed;
  int64_t out = 0;  // output features
  bool empty() const { return !w && !packed; }
  // The packed product applies the block's activation itself (Blocks::Use).
  bool fused_act() const { return packed && packed->activation() != 0; }
};

struct Layer {
  ggml_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b;
  Linear qkv, o, fc1, fc2;  // qkv: [3 * hidden] outputs, q then k then v
};

// One projection of a Linear: rows [row_offset, row_offset + out) of tensor `weight` (and of
// `bias`, "" for none); `slice` when the tensor holds more rows than this part.
struct LinearPart {
  std::string weight, bias;
  int64_t row_offset = 0;
  bool slice = false;
};

class Weights {
 public:
  Weights(const TensorFile& file, const EncoderOptions& opt)
      : file_(file), type_(opt.weights), amx_(opt.amx), own_(opt.own_kernels) {}
  // Requires tensor `name` of PyTorch shape `shape` (up to leading 1s), kept in f32 (norms,
  // biases, embeddings; matrices are NeedLinear's).
  void Need(const std::string& name, std::vector<int64_t> shape, ggml_tensor** dst);
  // A linear layer of `parts` stacked, each `out` rows of weights shaped `in` past the first
  // dimension ({hidden}, or {3, P, P} for a patch embedding).
  void NeedLinear(std::vector<LinearPart> parts, int64_t out, std::vector<int64_t> in, Linear* dst);
  // The tensors of `count` encoder layers under `prefix` ("vision_model.encoder.layers.").
  void NeedLayers(const std::string& prefix, int count, int64_t hidden, int64_t inter,
                  std::vector<Layer>* out);
  // Validates every requirement, then creates and fills the tensors on `backend`.
  Status Load(ggml_backend_t backend);
  // How many matrices live in ggml's AMX buffer (repacked for the tile unit).
  int amx_matrices() const { return amx_matrices_; }
  // How many run on lumen's own kernels, and which ("int8/avx2"; "" for none).
  int own_matrices() const { return own_matrices_; }
  const std::string& own_kernel() const { return own_kernel_; }

 private:
  struct Item {
    std::string name;
    std::vector<int64_t> shape;
    const TensorView* src;
    ggml_tensor** dst;
  };
  struct LinearItem {
    std::vector<LinearPart> parts;
    std::vector<const TensorView*> w, b;
    int64_t out;
    std::vector<int64_t> in;
    Linear* dst;
  };
  // The tensor, checked present and of a float type (else error_ says why, and null).
  const TensorView* Find(const std::string& name);
  Status FillLinear(const LinearItem& it, std::optional<gemm::Precision> own,
                    std::optional<gemm::Isa> isa);
  const TensorFile& file_;
  WeightType type_;
  bool amx_, own_;
  std::vector<Item> items_;
  std::vector<LinearItem> linears_;
  Status error_;
  int amx_matrices_ = 0, own_matrices_ = 0;
  std::string own_kernel_;
  CtxPtr ctx_, amx_ctx_;
  BufferPtr buffer_, amx_buffer_;
};

// What lumen's attention op needs to know (its userdata: lives in Blocks).
struct AttentionOp {
  gemm::Isa isa;
  int heads;
  bool causal;
};

struct Blocks {
  float eps;
  int heads;
  Activation act;
  // Attention (and the activation after fc1) on lumen's kernels where they run: set by Use().
  std::optional<gemm::Isa> isa;
  AttentionOp ops[2] = {};  // non-causal, causal
  // Uses lumen's kernels for attention when the options allow and the CPU runs them, and fuses
  // the activation into each packed fc1 of `layers` (and of `extra`).
  void Use(const EncoderOptions& opt, std::vector<detail::Layer>* layers,
           std::vector<detail::Linear*> extra = {});
  ggml_tensor* Norm(ggml_context* c, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b) const;
  // x: [in, T, B] -> [out, T, B] (a strided x is made contiguous first).
  static ggml_tensor* Apply(ggml_context* c, ggml_tensor* x, const detail::Linear& l);
  ggml_tensor* Act(ggml_context* c, ggml_tensor* x) const;
  // q: [hidden, Tq, B], k/v: [hidden, Tk, B] -> [hidden, Tq, B]; causal masks future keys.
  // q, k and v may be views into wider rows (columns of a stacked projection).
  ggml_tensor* Attention(ggml_context* c, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v,
                         bool causal) const;
  // One pre-LN encoder layer: x + attn(ln1(x)), then + mlp(ln2(x)).
  ggml_tensor* Layer(ggml_context* c, ggml_tensor* x, const detail::Layer& l, bool causal) const;
};

int DefaultThreads(int requested);

}  // namespace lumen::ml::detail
