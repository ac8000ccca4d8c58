#include "lumen/search/ann_index.h"

#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <fmt/format.h>

#include "lumen/util/temp_file.h"

namespace lumen {

struct AnnIndex::Impl {
  std::unique_ptr<hnswlib::InnerProductSpace> space;
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> graph;
  std::unordered_set<int64_t> live;
};

size_t AnnThreshold() {
  if (const char* v = std::getenv("LUMEN_ANN_MIN"); v && *v) return std::strtoull(v, nullptr, 10);
  return 20000;
}

AnnIndex::~AnnIndex() = default;

Result<std::unique_ptr<AnnIndex>> AnnIndex::Sync(const std::string& path, const FlatIndex& flat) {
  std::unique_ptr<AnnIndex> a(new AnnIndex());
  a->impl_ = std::make_unique<Impl>();
  Impl& m = *a->impl_;
  const int dim = flat.dim();
  m.space = std::make_unique<hnswlib::InnerProductSpace>(static_cast<size_t>(dim));
  const std::string ids_path = path + ".ids";
  std::error_code ec;
  try {
    if (std::filesystem::exists(path, ec) && std::filesystem::exists(ids_path, ec)) {
      m.graph = std::make_unique<hnswlib::HierarchicalNSW<float>>(m.space.get(), path);
      std::ifstream in(ids_path, std::ios::binary);
      int64_t id;
      while (in.read(reinterpret_cast<char*>(&id), sizeof(id))) m.live.insert(id);
    }
  } catch (const std::exception& e) {
    m.graph.reset();  // unreadable: rebuild from the catalog
    m.live.clear();
  }
  if (!m.graph)
    m.graph = std::make_unique<hnswlib::HierarchicalNSW<float>>(
        m.space.get(), std::max<size_t>(1024, flat.size()), 16, 200);
  try {
    std::unordered_set<int64_t> now(flat.ids().begin(), flat.ids().end());
    for (int64_t id : std::vector<int64_t>(m.live.begin(), m.live.end())) {
      if (now.count(id)) continue;
      m.graph->markDelete(static_cast<hnswlib::labeltype>(id));
      m.live.erase(id);
      ++a->removed_;
    }
    const auto& ids = flat.ids();
    size_t need = m.graph->cur_element_count +
                  (flat.size() > m.live.size() ? flat.size() - m.live.size() : 0);
    if (need > m.graph->max_elements_) m.graph->resizeIndex(need + need / 4 + 1024);
    std::vector<size_t> todo;
    for (size_t i = 0; i < ids.size(); ++i)
      if (!m.live.count(ids[i])) todo.push_back(i);
    // hnswlib's addPoint is thread-safe (per-node link locks): one worker per core, each taking
    // the next vector. A big first build is ~2x faster on two cores.
    std::atomic<size_t> next{0};
    std::exception_ptr failed;
    std::mutex failed_mu;
    auto worker = [&] {
      for (size_t t; (t = next.fetch_add(1)) < todo.size();) {
        const size_t i = todo[t];
        try {
          m.graph->addPoint(flat.data() + i * size_t(dim), static_cast<hnswlib::labeltype>(ids[i]));
        } catch (...) {
          std::lock_guard<std::mutex> lock(failed_mu);
          if (!failed) failed = std::current_exception();
          next = todo.size();
        }
      }
    };
    const size_t threads =
        todo.size() < 1000 ? 1 : std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    if (failed) std::rethrow_exception(failed);
    for (size_t i : todo) m.live.insert(ids[i]);
    a->added_ += todo.size();
    if (a->added_ || a->removed_ || !std::filesystem::exists(path, ec)) {
      std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
      // Temporaries created exclusively beside the files, renamed over them when complete.
      auto graph_tmp = TempFile::Create(path, 0644);
      if (!graph_tmp.ok()) return graph_tmp.status();
      auto ids_tmp = TempFile::Create(ids_path, 0644);
      if (!ids_tmp.ok()) return ids_tmp.status();
      graph_tmp->CloseForWriter();
      m.graph->saveIndex(graph_tmp->path());
      std::string ids_bytes;
      for (int64_t id : m.live) ids_bytes.append(reinterpret_cast<const char*>(&id), sizeof(id));
      LUMEN_RETURN_IF_ERROR(ids_tmp->Write(ids_bytes));
      LUMEN_RETURN_IF_ERROR(graph_tmp->Commit());
      LUMEN_RETURN_IF_ERROR(ids_tmp->Commit());
    }
  } catch (const std::exception& e) {
    return Status::Internal(fmt::format("{}: ANN index error: {}", path, e.what()));
  }
  return a;
}

std::vector<Hit> AnnIndex::Search(const FlatIndex& flat, const float* q, size_t k,
                                  const std::function<bool(int64_t)>& keep,
                                  size_t oversample) const {
  const Impl& m = *impl_;
  const size_t want = std::min(m.live.size(), std::max<size_t>(k * oversample, 64));
  std::vector<Hit> hits;
  if (want > 0) {
    m.graph->setEf(std::max<size_t>(want, 64));
    auto pq = m.graph->searchKnn(q, want);
    while (!pq.empty()) {
      int64_t id = static_cast<int64_t>(pq.top().second);
      pq.pop();
      if (keep && !keep(id)) continue;
      const float* v = flat.Vector(id);
      if (!v) continue;
      float dot = 0;
      for (int d = 0; d < flat.dim(); ++d) dot += q[d] * v[d];  // exact re-rank
      hits.push_back({id, dot});
    }
  }
  if (hits.size() < std::min(k, flat.size()) && keep)
    return flat.Search(q, k, keep);  // selective filter
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return a.cosine > b.cosine || (a.cosine == b.cosine && a.id < b.id);
  });
  if (hits.size() > k) hits.resize(k);
  return hits;
}

}  // namespace lumen
