#include "lumen/llm/local_vlm.h"

#include <llama.h>
#include <mtmd-helper.h>
#include <mtmd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/util/json.h"
#include "lumen/util/log.h"

namespace lumen::llm {

struct LocalVlm::Impl {
  llama_model* model = nullptr;
  llama_context* ctx = nullptr;
  mtmd_context* mtmd = nullptr;
  int context = 4096;
  // The tokens whose keys and values are in the context's cache (text prompts only): the next
  // prompt that starts the same way (every document's prompt starts with the chat template and
  // the same instructions) evaluates only what follows the shared start.
  std::vector<llama_token> cached;
  ~Impl() {
    if (mtmd) mtmd_free(mtmd);
    if (ctx) llama_free(ctx);
    if (model) llama_model_free(model);
  }
};

namespace {

void Quiet(ggml_log_level level, const char* text, void*) {
  if (level >= GGML_LOG_LEVEL_ERROR) {
    std::string t(text);
    while (!t.empty() && t.back() == '\n') t.pop_back();
    if (!t.empty()) log::Debug(t);
  }
}

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Result<std::unique_ptr<LocalVlm>> LocalVlm::Load(const LocalVlmOptions& opt) {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(Quiet, nullptr);
    mtmd_helper_log_set(Quiet, nullptr);
    llama_backend_init();
  });
  std::unique_ptr<LocalVlm> v(new LocalVlm());
  v->impl_ = std::make_unique<Impl>();
  Impl& m = *v->impl_;
  m.context = opt.context;
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  m.model = llama_model_load_from_file(opt.model.c_str(), mp);
  if (!m.model)
    return Status::Invalid(fmt::format("{}: not a GGUF text model llama.cpp can load", opt.model));
  const int threads = opt.threads > 0 ? opt.threads : int(std::thread::hardware_concurrency());
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = uint32_t(opt.context);
  cp.n_batch = 2048;
  cp.n_threads = threads;
  cp.n_threads_batch = threads;
  // Plain attention over an f16 cache. On the CPU, llama.cpp's flash-attention kernel is most of
  // each decoding step once a prompt is long (a document's 900 tokens: 20 tokens/s on a Xeon,
  // against 74 without it); and over an f16 cache the prompt's attention products go to ggml's
  // tiled GEMM (the queries converted to f16 in one contiguous block), where over an f32 one they
  // are row-by-row dot products: 28% less prompt time for the same decoding speed (SmolLM2-135M
  // shape, 764 prompt tokens, AMD EPYC, BENCHMARKS.md "Documents").
  cp.type_k = cp.type_v = GGML_TYPE_F16;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  m.ctx = llama_init_from_model(m.model, cp);
  if (!m.ctx)
    return Status::Internal(fmt::format("{}: cannot create a llama.cpp context", opt.model));
  if (opt.mmproj.empty()) return v;  // text only (documents)
  mtmd_context_params mp2 = mtmd_context_params_default();
  mp2.use_gpu = false;
  mp2.n_threads = threads;
  mp2.print_timings = false;
  mp2.warmup = false;
  m.mtmd = mtmd_init_from_file(opt.mmproj.c_str(), m.model, mp2);
  if (!m.mtmd)
    return Status::Invalid(fmt::format("{}: not a vision projector (mmproj GGUF) that fits {}",
                                       opt.mmproj, opt.model));
  if (!mtmd_support_vision(m.mtmd))
    return Status::Invalid(fmt::format("{}: the projector has no vision encoder", opt.mmproj));
  return v;
}

LocalVlm::~LocalVlm() = default;

void LocalVlm::ClearCache() {
  llama_memory_clear(llama_get_memory(impl_->ctx), true);
  impl_->cached.clear();
}

Result<LocalReply> LocalVlm::Generate(const Image& rgb, const std::string& prompt, int max_tokens,
                                      const std::string& grammar, bool stop_at_eog) {
  Impl& m = *impl_;
  const bool image = !rgb.empty();
  if (image && rgb.channels != 3) return Status::Invalid("the image must be RGB");
  if (image && !m.mtmd)
    return Status::Invalid("describing images in process needs --mmproj (a vision projector)");
  const llama_vocab* vocab = llama_model_get_vocab(m.model);
  // The chat template of the model when llama.cpp knows it, else a plain one.
  const std::string content = image ? std::string(mtmd_default_marker()) + "\n" + prompt : prompt;
  std::string text;
  if (const char* tmpl = llama_model_chat_template(m.model, nullptr)) {
    llama_chat_message msg{"user", content.c_str()};
    std::vector<char> buf(content.size() * 2 + 1024);
    int n = llama_chat_apply_template(tmpl, &msg, 1, true, buf.data(), int(buf.size()));
    if (n > int(buf.size())) {
      buf.resize(size_t(n) + 1);
      n = llama_chat_apply_template(tmpl, &msg, 1, true, buf.data(), int(buf.size()));
    }
    if (n > 0) text.assign(buf.data(), size_t(n));
  }
  if (text.empty()) text = "User: " + content + "\nAssistant:";

  const auto t0 = std::chrono::steady_clock::now();
  LocalReply r;
  llama_pos n_past = 0;
  if (!image) {
    // Text only: the prompt tokenized and evaluated in batches of the context's n_batch.
    std::vector<llama_token> toks(text.size() + 16);
    int n = llama_tokenize(vocab, text.data(), int32_t(text.size()), toks.data(),
                           int32_t(toks.size()), true, true);
    if (n < 0) return Status::Internal("the prompt cannot be tokenized");
    toks.resize(size_t(n));
    r.prompt_tokens = n;
    if (r.prompt_tokens + max_tokens > m.context)
      return Status::TooLarge(
          fmt::format("{} prompt tokens + {} to generate exceed the context of {}", r.prompt_tokens,
                      max_tokens, m.context));
    // What the cache already holds of this prompt; at least the last token is evaluated again,
    // for its logits.
    size_t keep = 0;
    while (keep < m.cached.size() && keep + 1 < toks.size() && m.cached[keep] == toks[keep]) ++keep;
    llama_memory_t mem = llama_get_memory(m.ctx);
    if (keep == 0 || !llama_memory_seq_rm(mem, 0, llama_pos(keep), -1)) {
      llama_memory_clear(mem, true);
      keep = 0;
    }
    m.cached.assign(toks.begin(), toks.begin() + long(keep));
    r.reused_tokens = int(keep);
    const int step = int(llama_n_batch(m.ctx));
    for (int at = int(keep); at < n; at += step) {
      llama_batch b = llama_batch_get_one(toks.data() + at, std::min(step, n - at));
      if (llama_decode(m.ctx, b) != 0) {
        llama_memory_clear(mem, true);
        m.cached.clear();
        return Status::Internal("evaluating the prompt failed");
      }
      m.cached.insert(m.cached.end(), toks.begin() + at,
                      toks.begin() + at + std::min(step, n - at));
    }
    n_past = n;
  } else {
    llama_memory_clear(llama_get_memory(m.ctx), true);
    m.cached.clear();
    std::unique_ptr<mtmd_bitmap, decltype(&mtmd_bitmap_free)> bitmap(
        mtmd_bitmap_init(uint32_t(rgb.width), uint32_t(rgb.height), rgb.pixels.data()),
        mtmd_bitmap_free);
    std::unique_ptr<mtmd_input_chunks, decltype(&mtmd_input_chunks_free)> chunks(
        mtmd_input_chunks_init(), mtmd_input_chunks_free);
    mtmd_input_text in{text.c_str(), text.size(), true, true};
    const mtmd_bitmap* bitmaps[] = {bitmap.get()};
    if (int rc = mtmd_tokenize(m.mtmd, chunks.get(), &in, bitmaps, 1); rc != 0)
      return Status::Internal(fmt::format("libmtmd could not prepare the image (code {})", rc));
    for (size_t i = 0; i < mtmd_input_chunks_size(chunks.get()); ++i)
      r.prompt_tokens += int(mtmd_input_chunk_get_n_tokens(mtmd_input_chunks_get(chunks.get(), i)));
    if (r.prompt_tokens + max_tokens > m.context)
      return Status::TooLarge(
          fmt::format("{} prompt tokens + {} to generate exceed the context of {}", r.prompt_tokens,
                      max_tokens, m.context));
    if (mtmd_helper_eval_chunks(m.mtmd, m.ctx, chunks.get(), 0, 0, 2048, true, &n_past) != 0)
      return Status::Internal("evaluating the image and prompt failed");
  }
  r.encode_ms = MsSince(t0);

  const auto t1 = std::chrono::steady_clock::now();
  // Greedy decoding under the grammar, best candidates first: the unconstrained best token is
  // tested alone against the grammar and taken when it fits (what a trained model does almost
  // every step); when it does not, the 128 best are tested, and only when none of them fits is
  // the grammar applied to the whole vocabulary. Candidates are ordered by (logit, lower id), so
  // the first valid one is exactly the token greedy-after-grammar over the whole vocabulary
  // gives; masking 49,152 candidates every step was most of the generation time.
  std::unique_ptr<llama_sampler, decltype(&llama_sampler_free)> g(nullptr, llama_sampler_free);
  if (!grammar.empty()) {
    g.reset(llama_sampler_init_grammar(vocab, grammar.c_str(), "root"));
    if (!g) return Status::Invalid("the output grammar does not parse");
  }
  const int n_vocab = llama_vocab_n_tokens(vocab);
  std::vector<llama_token_data> all;
  constexpr size_t kFirst = 128;
  auto better = [](const llama_token_data& a, const llama_token_data& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  };
  // The first candidate of `d` (in `better` order) the grammar allows, or -1.
  auto first_valid = [&](llama_token_data* d, size_t n) -> llama_token {
    llama_token_data_array arr{d, n, -1, false};
    llama_sampler_apply(g.get(), &arr);
    llama_token best = -1;
    const llama_token_data* b = nullptr;
    for (size_t i = 0; i < arr.size; ++i)
      if (arr.data[i].logit > -INFINITY && (!b || better(arr.data[i], *b))) {
        b = &arr.data[i];
        best = b->id;
      }
    return best;
  };
  for (int i = 0; i < max_tokens; ++i) {
    const float* logits = llama_get_logits_ith(m.ctx, -1);
    if (!logits) return Status::Internal("the model gave no logits");
    llama_token tok = 0;
    for (int v = 1; v < n_vocab; ++v)
      if (logits[v] > logits[tok]) tok = v;
    if (g) {
      llama_token_data one{tok, logits[tok], 0.0f};
      if (first_valid(&one, 1) < 0) {
        all.resize(size_t(n_vocab));
        for (int v = 0; v < n_vocab; ++v) all[size_t(v)] = {v, logits[v], 0.0f};
        const size_t k = std::min(kFirst, all.size());
        std::partial_sort(all.begin(), all.begin() + long(k), all.end(), better);
        tok = first_valid(all.data(), k);
        if (tok < 0) {
          for (size_t v = k; v < all.size(); ++v) all[v - k] = all[v];
          tok = first_valid(all.data(), all.size() - k);
        }
        if (tok < 0) break;  // the grammar allows nothing more
      }
      llama_sampler_accept(g.get(), tok);
    }
    if (stop_at_eog && llama_vocab_is_eog(vocab, tok)) break;
    char piece[256];
    const int n = llama_token_to_piece(vocab, tok, piece, sizeof piece, 0, false);
    if (n > 0) r.text.append(piece, size_t(n));
    ++r.generated_tokens;
    llama_batch b = llama_batch_get_one(&tok, 1);
    if (llama_decode(m.ctx, b) != 0) {
      llama_memory_clear(llama_get_memory(m.ctx), true);
      m.cached.clear();
      return Status::Internal("decoding a generated token failed");
    }
    if (!image) m.cached.push_back(tok);
  }
  r.generate_ms = MsSince(t1);
  return r;
}

namespace {

// A GBNF literal producing `s` as a JSON string (JSON escapes, then GBNF escapes).
std::string Literal(const std::string& s) {
  const std::string json_text = json::Dump(nlohmann::json(s));
  std::string o = "\"";
  for (char c : json_text) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

// The folder_name rule: any short name, or one of `folders`.
std::string FolderRule(const std::vector<std::string>& folders) {
  if (folders.empty()) return "name";
  std::string folder = "(";
  for (size_t i = 0; i < folders.size(); ++i) folder += (i ? " | " : "") + Literal(folders[i]);
  return folder + ")";
}

constexpr const char* kCommonRules = R"(name ::= "\"" [a-zA-Z0-9] [a-zA-Z0-9 -]{0,30} "\"")"
                                     "\n"
                                     R"(char ::= [^"\\\x7F\x00-\x1F])"
                                     "\n"
                                     R"(ws ::= " "?)"
                                     "\n";

}  // namespace

std::string DocumentGrammar(int text_chars, const std::vector<std::string>& folders) {
  std::string g = fmt::format(
      R"(root ::= "{{" ws "\"description\":" ws text "," ws "\"file_name\":" ws name "," ws )"
      R"("\"folder_name\":" ws {} "," ws "\"category\":" ws name "," ws "\"keywords\":" ws )"
      R"("[" ws (name (ws "," ws name){{0,7}})? ws "]" ws "}}")"
      "\n",
      FolderRule(folders));
  g += fmt::format(R"(text ::= "\"" char{{1,{}}} "\"")"
                   "\n",
                   text_chars);
  return g + kCommonRules;
}

std::string DescribeGrammar(int text_chars, const std::vector<std::string>& folders, bool social) {
  const std::string folder = FolderRule(folders);
  std::string g = fmt::format(
      R"(root ::= "{{" ws "\"description\":" ws text "," ws "\"ocr_text\":" ws ocr "," ws )"
      R"("\"file_name\":" ws name "," ws "\"folder_name\":" ws {}{} ws "}}")"
      "\n",
      folder, social ? R"( "," ws "\"social\":" ws social)" : "");
  g += fmt::format(R"(text ::= "\"" char{{1,{}}} "\"")"
                   "\n"
                   R"(ocr ::= "\"" char{{0,{}}} "\"")"
                   "\n",
                   text_chars, text_chars / 2);
  g += kCommonRules;
  if (social)
    g += R"(social ::= "{" ws "\"technical\":" ws score "," ws "\"appeal\":" ws score "," ws )"
         R"("\"engagement\":" ws score "," ws "\"category\":" ws name "," ws "\"mood\":" ws )"
         R"(name "," ws "\"caption\":" ws ocr "," ws "\"hashtags\":" ws "[" ws )"
         R"((name (ws "," ws name){0,4})? ws "]" ws "}")"
         "\n"
         R"(score ::= [1-9] | "10")"
         "\n";
  return g;
}

}  // namespace lumen::llm
