// Private to the ml layer: what the image and text towers share. Owning handles for ggml, the
// weight loader (validate every tensor against the config, then create and fill them in the
// requested type), and the transformer building blocks (pre-LN encoder layers as in HF's
// SigLIP/CLIP).
#pragma once

#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml.h>

#include <memory>
#include <string>
#include <vector>

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

struct Layer {
  ggml_tensor *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
  ggml_tensor *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
};

class Weights {
 public:
  Weights(const TensorFile& file, WeightType type, bool amx)
      : file_(file), type_(type), amx_(amx) {}
  // Requires tensor `name` of PyTorch shape `shape`. Matrices ([out, in...]) get the requested
  // weight type; everything else stays f32. `source`/`row_offset` take rows of a fused tensor.
  void Need(const std::string& name, std::vector<int64_t> shape, ggml_tensor** dst, bool matrix,
            int64_t row_offset = 0, const std::string& source = "");
  // The tensors of `count` encoder layers under `prefix` ("vision_model.encoder.layers.").
  void NeedLayers(const std::string& prefix, int count, int64_t hidden, int64_t inter,
                  std::vector<Layer>* out);
  // Validates every requirement, then creates and fills the tensors on `backend`.
  Status Load(ggml_backend_t backend);
  // How many matrices live in ggml's AMX buffer (repacked for the tile unit).
  int amx_matrices() const { return amx_matrices_; }

 private:
  struct Item {
    std::string name;
    std::vector<int64_t> shape;
    const TensorView* src;
    ggml_tensor** dst;
    bool matrix;
    int64_t row_offset;
    bool slice;
  };
  const TensorFile& file_;
  WeightType type_;
  bool amx_;
  std::vector<Item> items_;
  Status error_;
  int amx_matrices_ = 0;
  CtxPtr ctx_, amx_ctx_;
  BufferPtr buffer_, amx_buffer_;
};

struct Blocks {
  float eps;
  int heads;
  Activation act;
  ggml_tensor* Norm(ggml_context* c, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b) const;
  static ggml_tensor* Linear(ggml_context* c, ggml_tensor* x, ggml_tensor* w, ggml_tensor* b);
  ggml_tensor* Act(ggml_context* c, ggml_tensor* x) const;
  // q: [hidden, Tq, B], k/v: [hidden, Tk, B] -> [hidden, Tq, B]; causal masks future keys.
  ggml_tensor* Attention(ggml_context* c, ggml_tensor* q, ggml_tensor* k, ggml_tensor* v,
                         bool causal) const;
  // One pre-LN encoder layer: x + attn(ln1(x)), then + mlp(ln2(x)).
  ggml_tensor* Layer(ggml_context* c, ggml_tensor* x, const detail::Layer& l, bool causal) const;
};

int DefaultThreads(int requested);

}  // namespace lumen::ml::detail
