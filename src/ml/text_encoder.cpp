#include "lumen/ml/text_encoder.h"

#include <ggml-cpu.h>

#include <cmath>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "lumen/ml/model_files.h"
#include "lumen/ml/safetensors.h"
#include "tower.h"

namespace lumen::ml {

struct TextEncoder::Impl {
  ModelConfig cfg;
  int threads = 1;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<ModelSource> source;
  detail::BackendPtr backend;
  std::unique_ptr<detail::Weights> weights;
  detail::GallocPtr galloc;
  detail::Blocks blocks;
  ggml_tensor *tok_emb = nullptr, *pos = nullptr, *final_w = nullptr, *final_b = nullptr;
  detail::Linear head;
  std::vector<detail::Layer> layers;
  float scale = 1.0f, bias = 0.0f;

  int out_dim() const {
    return cfg.family == Family::kSiglip
               ? cfg.text.projection
               : (cfg.projection_dim > 0 ? cfg.projection_dim : cfg.text.hidden);
  }

  // ids: [T, B] int32 -> [dim, B]
  ggml_cgraph* Build(ggml_context* c, int len, int batch, ggml_tensor** ids_out,
                     ggml_tensor** pos_out, ggml_tensor** output) const {
    const detail::Blocks& B = blocks;
    const bool clip = cfg.family == Family::kClip;
    ggml_tensor* ids = ggml_new_tensor_1d(c, GGML_TYPE_I32, int64_t(len) * batch);
    ggml_set_input(ids);
    ggml_tensor* positions = ggml_new_tensor_1d(c, GGML_TYPE_I32, len);
    ggml_set_input(positions);
    *ids_out = ids;
    *pos_out = positions;
    ggml_tensor* x = ggml_get_rows(c, tok_emb, ids);  // [hidden, T*B]
    x = ggml_reshape_3d(c, x, cfg.text.hidden, len, batch);
    x = ggml_add(c, x, ggml_get_rows(c, pos, positions));
    for (const detail::Layer& l : layers) x = B.Layer(c, x, l, clip);
    x = B.Norm(c, x, final_w, final_b);
    // Last token of each sequence: SigLIP's pooling, and CLIP's end token at exact length.
    ggml_tensor* last = ggml_view_2d(c, x, cfg.text.hidden, batch, x->nb[2], x->nb[1] * (len - 1));
    ggml_tensor* pooled = B.Apply(c, ggml_cont(c, last), head);
    pooled = ggml_l2_norm(c, pooled, 1e-12f);
    ggml_set_output(pooled);
    *output = pooled;
    ggml_cgraph* gf = ggml_new_graph_custom(c, 4096, false);
    ggml_build_forward_expand(gf, pooled);
    return gf;
  }
};

TextEncoder::TextEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TextEncoder::~TextEncoder() = default;
const ModelConfig& TextEncoder::config() const {
  return impl_->cfg;
}
const Tokenizer& TextEncoder::tokenizer() const {
  return *impl_->tok;
}
int TextEncoder::dim() const {
  return impl_->out_dim();
}
void TextEncoder::set_threads(int threads) {
  impl_->threads = detail::DefaultThreads(threads);
  ggml_backend_cpu_set_n_threads(impl_->backend.get(), impl_->threads);
}
int TextEncoder::amx_matrices() const {
  return impl_->weights->amx_matrices();
}
int TextEncoder::own_matrices() const {
  return impl_->weights->own_matrices();
}
float TextEncoder::logit_scale() const {
  return impl_->scale;
}
float TextEncoder::logit_bias() const {
  return impl_->bias;
}

Result<std::unique_ptr<TextEncoder>> TextEncoder::Load(const std::string& dir,
                                                       const EncoderOptions& opt) {
  auto model = OpenModel(dir);
  if (!model.ok()) return model.status();
  if (!(*model)->config.text.present)
    return Status::Invalid(
        fmt::format("{}: the config has no text_config: not a text-image model", dir));
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.cfg = (*model)->config;
  m.threads = detail::DefaultThreads(opt.threads);
  auto tok = Tokenizer::Create(**model);
  if (!tok.ok()) return tok.status();
  m.tok = std::move(tok.value());
  m.source = std::move(model.value());
  const TextConfig& t = m.cfg.text;
  m.blocks = {t.eps, t.heads, t.act};
  const int64_t H = t.hidden;
  m.weights = std::make_unique<detail::Weights>(*m.source->tensors, opt);
  detail::Weights& w = *m.weights;
  const std::string tm = "text_model.";
  w.Need(tm + "embeddings.token_embedding.weight", {t.vocab, H}, &m.tok_emb);
  w.Need(tm + "embeddings.position_embedding.weight", {t.max_positions, H}, &m.pos);
  w.NeedLayers(tm + "encoder.layers.", t.layers, H, t.intermediate, &m.layers);
  w.Need(tm + "final_layer_norm.weight", {H}, &m.final_w);
  w.Need(tm + "final_layer_norm.bias", {H}, &m.final_b);
  if (m.cfg.family == Family::kSiglip) {
    w.NeedLinear({{tm + "head.weight", tm + "head.bias"}}, t.projection, {H}, &m.head);
  } else if (m.cfg.projection_dim > 0) {
    w.NeedLinear({{"text_projection.weight", ""}}, m.cfg.projection_dim, {H}, &m.head);
  }
  m.backend.reset(ggml_backend_cpu_init());
  if (!m.backend) return Status::Internal("cannot start the ggml CPU backend");
  ggml_backend_cpu_set_n_threads(m.backend.get(), m.threads);
  LUMEN_RETURN_IF_ERROR(w.Load(m.backend.get()));
  m.blocks.Use(opt, &m.layers);
  m.galloc.reset(ggml_gallocr_new(ggml_backend_get_default_buffer_type(m.backend.get())));
  // The model's own calibration (defaults: the families' usual values).
  const ModelLogits logits = ReadLogits(*m.source);
  m.scale = logits.scale.value_or(m.cfg.family == Family::kSiglip ? 10.0f : 100.0f);
  m.bias = logits.bias.value_or(0.0f);
  m.source.reset();  // the weights are copied; unmap the file
  return std::unique_ptr<TextEncoder>(new TextEncoder(std::move(impl)));
}

Status TextEncoder::Encode(const std::vector<std::string>& texts, float* out, int batch_size) {
  std::vector<std::vector<int32_t>> tokens;
  tokens.reserve(texts.size());
  for (const auto& t : texts) tokens.push_back(impl_->tok->Encode(t));
  return EncodeTokens(tokens, out, batch_size);
}

Status TextEncoder::EncodeTokens(const std::vector<std::vector<int32_t>>& tokens, float* out,
                                 int batch_size) {
  Impl& m = *impl_;
  const int dim = m.out_dim();
  // Group by length: each group runs as one batch of equal-length sequences.
  std::map<size_t, std::vector<size_t>> by_len;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const auto& t = tokens[i];
    if (t.empty() || t.size() > static_cast<size_t>(m.cfg.text.max_positions))
      return Status::Invalid(fmt::format("text {} has {} tokens; 1..{} allowed", i, t.size(),
                                         m.cfg.text.max_positions));
    for (int32_t id : t)
      if (id < 0 || id >= m.cfg.text.vocab)
        return Status::Invalid(fmt::format("token id {} outside the vocabulary", id));
    by_len[t.size()].push_back(i);
  }
  const size_t graph_mem = ggml_tensor_overhead() * 4096 + ggml_graph_overhead_custom(4096, false);
  std::vector<uint8_t> graph_buf(graph_mem);
  std::vector<float> result;
  for (const auto& [len, idx] : by_len) {
    for (size_t at = 0; at < idx.size(); at += static_cast<size_t>(batch_size)) {
      const int batch =
          static_cast<int>(std::min(idx.size() - at, static_cast<size_t>(batch_size)));
      ggml_init_params params{graph_mem, graph_buf.data(), true};
      detail::CtxPtr gctx(ggml_init(params));
      ggml_tensor *ids = nullptr, *positions = nullptr, *output = nullptr;
      ggml_cgraph* gf =
          m.Build(gctx.get(), static_cast<int>(len), batch, &ids, &positions, &output);
      if (!ggml_gallocr_alloc_graph(m.galloc.get(), gf))
        return Status::Internal("cannot allocate the compute graph");
      std::vector<int32_t> flat;
      for (int b = 0; b < batch; ++b) {
        const auto& t = tokens[idx[at + b]];
        flat.insert(flat.end(), t.begin(), t.end());
      }
      std::vector<int32_t> pos(len);
      for (size_t p = 0; p < len; ++p) pos[p] = static_cast<int32_t>(p);
      ggml_backend_tensor_set(ids, flat.data(), 0, flat.size() * 4);
      ggml_backend_tensor_set(positions, pos.data(), 0, pos.size() * 4);
      if (ggml_backend_graph_compute(m.backend.get(), gf) != GGML_STATUS_SUCCESS)
        return Status::Internal("ggml graph computation failed");
      result.resize(size_t(dim) * batch);
      ggml_backend_tensor_get(output, result.data(), 0, result.size() * 4);
      for (int b = 0; b < batch; ++b)
        std::memcpy(out + idx[at + b] * dim, result.data() + size_t(b) * dim, size_t(dim) * 4);
    }
  }
  return Status::Ok();
}

}  // namespace lumen::ml
