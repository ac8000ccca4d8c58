#include "lumen/pipeline/pipeline.h"

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "lumen/io/file.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"

namespace lumen {
namespace {
// The message of the exception being handled (inside a catch block).
std::string CurrentError() {
  try {
    throw;
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception";
  }
}
}  // namespace
namespace {

// Caps the file bytes held in memory by items in flight. One file larger than the whole budget
// may still proceed when nothing else holds any.
class MemoryBudget {
 public:
  explicit MemoryBudget(uint64_t cap) : cap_(cap) {}
  void Acquire(uint64_t n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return used_ == 0 || used_ + n <= cap_; });
    used_ += n;
  }
  void Release(uint64_t n) {
    {
      std::lock_guard lock(mu_);
      used_ -= n;
    }
    cv_.notify_all();
  }

 private:
  uint64_t cap_;
  uint64_t used_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
};

class BudgetHold {
 public:
  BudgetHold(MemoryBudget* b, uint64_t n) : b_(b), n_(n) {
    if (b_) b_->Acquire(n_);
  }
  ~BudgetHold() { Release(); }
  void Release() {
    if (b_) b_->Release(n_);
    b_ = nullptr;
  }

 private:
  MemoryBudget* b_;
  uint64_t n_;
};

std::string BaseName(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The file against --max-file-size, before any of it is read.
Status SizeLimit(const ItemResult& r, const PipelineOptions& opt) {
  if (r.identity.size <= opt.max_file_bytes) return Status::Ok();
  return Status::TooLarge(fmt::format("file is {:.1f} MB, above the {:.0f} MB size limit",
                                      r.identity.size / 1048576.0, opt.max_file_bytes / 1048576.0));
}

// The whole file read and hashed: the shared start of a photo's and a document's processing
// (the caller holds the memory budget for `bytes`).
Status ReadAndHash(OpenedFile& file, const PipelineOptions& opt, Profile* profile,
                   std::vector<uint8_t>* bytes, Hash128* hash) {
  {
    StageTimer t(profile, Stage::kRead);
    LUMEN_RETURN_IF_ERROR(ReadAll(file, bytes, opt.after_read_for_test));
  }
  StageTimer t(profile, Stage::kHash);
  *hash = HashBytes(bytes->data(), bytes->size());
  return Status::Ok();
}

// A file whose first bytes may be a document's: read, hashed, its kind confirmed from the whole
// content (a ZIP is told by its entries), then its text extracted within the limits.
ItemResult ProcessDocument(ItemResult r, OpenedFile& file, const PipelineOptions& opt,
                           const std::unordered_set<Hash128, Hash128Hasher>* complete,
                           Profile* profile, MemoryBudget* budget) {
  auto fail = [&](Status st) {
    r.outcome = ItemResult::Outcome::kFailed;
    r.status = std::move(st);
    return std::move(r);
  };
  const std::string name = BaseName(r.path);
  if (Status st = SizeLimit(r, opt); !st.ok()) return fail(st);
  std::vector<uint8_t> bytes;
  BudgetHold hold(budget, r.identity.size);
  if (Status st = ReadAndHash(file, opt, profile, &bytes, &r.hash); !st.ok()) return fail(st);
  StageTimer t(profile, Stage::kDocument);
  const doc::DocFormat f = doc::DetectDocument(bytes.data(), bytes.size(), name);
  if (f == doc::DocFormat::kUnknown) {
    const std::string what = DescribeNonImage(bytes.data(), std::min(bytes.size(), kMagicBytes));
    if (doc::HasDocumentExtension(name) || HasImageExtension(name))
      return fail(Status::Unsupported(fmt::format("not a document: the content is {}", what)));
    r.outcome = ItemResult::Outcome::kSkipped;
    r.status = Status::Unsupported(fmt::format("not an image or a document ({})", what));
    return r;
  }
  r.kind = MediaKind::kDocument;
  r.format_name = doc::DocFormatName(f);
  if (complete && complete->count(r.hash)) {
    r.outcome = ItemResult::Outcome::kKnown;
    return r;
  }
  auto text = doc::ExtractText(bytes.data(), bytes.size(), f, opt.doc_limits);
  if (!text.ok()) return fail(text.status());
  DocumentRecord d;
  d.title = std::move(text->title);
  d.author = std::move(text->author);
  d.created = std::move(text->created);
  d.language = std::move(text->language);
  d.pages = text->pages;
  d.needs_render = text->needs_render;
  d.truncated = text->truncated;
  d.text = std::move(text->text);
  r.document = std::move(d);
  r.outcome = ItemResult::Outcome::kNew;
  return r;
}

// A video's creation time as the catalog keeps a capture time: local "YYYY-MM-DDTHH:MM:SS" and
// the offset when the file has one (QuickTime's creationdate "2024-05-01T12:20:30+0200", or a
// UTC `creation_time` "2024-05-01T10:20:30.000000Z").
void CreationTime(const std::string& v, PhotoMetadata* m) {
  if (v.size() < 19 || v[4] != '-' || v[7] != '-' || (v[10] != 'T' && v[10] != ' ') ||
      v[13] != ':' || v[16] != ':')
    return;
  std::string local = v.substr(0, 19);
  local[10] = 'T';
  if (local.substr(0, 4) == "1904" || local.substr(0, 4) == "1970") return;  // zero in MP4/Unix
  m->captured_at = local;
  size_t at = 19;
  while (at < v.size() && (v[at] == '.' || std::isdigit(static_cast<unsigned char>(v[at])))) ++at;
  if (at >= v.size()) return;
  if (v[at] == 'Z') {
    m->utc_offset = "+00:00";
  } else if ((v[at] == '+' || v[at] == '-') && v.size() >= at + 5) {
    std::string z = v.substr(at);
    if (z.size() == 5) z.insert(3, ":");  // +0200
    if (z.size() == 6 && z[3] == ':') m->utc_offset = z;
  }
}

// A file whose first bytes are a video container's: one streaming pass (no whole-file read, so
// neither --max-file-size nor the memory budget's file bytes apply; the pass holds a fixed share
// of the budget for its decoder), then the poster's thumbnail and each key frame's hashes and
// encoder input.
ItemResult ProcessVideo(ItemResult r, const PipelineOptions& opt,
                        const std::unordered_set<Hash128, Hash128Hasher>* complete,
                        Profile* profile, MemoryBudget* budget, int jobs) {
  auto fail = [&](Status st) {
    // The analyzer names the file; the pipeline's reasons do not (the path is beside them).
    std::string m = st.message();
    if (m.rfind(r.path + ": ", 0) == 0) m.erase(0, r.path.size() + 2);
    r.outcome = ItemResult::Outcome::kFailed;
    r.status = Status(st.code(), m);
    return std::move(r);
  };
  constexpr uint64_t kVideoMemory = 96ull << 20;  // a decoder's frames, a 4K 10-bit one's too
  BudgetHold hold(budget, std::min(opt.memory_budget, kVideoMemory));
  video::AnalyzeOptions vo = opt.video;
  vo.threads = std::clamp(jobs, 1, 4);
  vo.min_short_side = std::max(vo.min_short_side, opt.encoder ? opt.encoder->input_size() : 0);
  Result<video::VideoAnalysis> analysed = Status::Internal("not analysed");
  {
    StageTimer t(profile, Stage::kVideo);
    analysed = video::Analyze(r.path, vo);
  }
  hold.Release();
  if (!analysed.ok()) {
    const Status& st = analysed.status();
    if (st.code() == Code::kInterrupted) {  // a stop request: not recorded, the next run redoes it
      r.outcome = ItemResult::Outcome::kInterrupted;
      return r;
    }
    // No video stream (an audio file in MP4, Ogg or Matroska): not lumen's, unless it is named
    // like a video.
    if (st.code() == Code::kUnsupported &&
        st.message().find("no video stream") != std::string::npos &&
        !HasVideoExtension(BaseName(r.path))) {
      r.outcome = ItemResult::Outcome::kSkipped;
      r.status =
          Status::Unsupported("not a photo, a video or a document (a container without video)");
      return r;
    }
    return fail(st);
  }
  video::VideoAnalysis& a = *analysed;
  r.kind = MediaKind::kVideo;
  r.hash = *a.probe.content_hash;
  const video::VideoTrack& track = video::MainTrack(a.probe);
  {
    const std::string& c = a.probe.container;
    r.format_name = c.rfind("mov,mp4", 0) == 0    ? "mp4"
                    : c.rfind("matroska", 0) == 0 ? "matroska"
                                                  : c.substr(0, c.find(','));
  }
  if (complete && complete->count(r.hash)) {
    r.outcome = ItemResult::Outcome::kKnown;
    return r;
  }
  r.width = track.width;
  r.height = track.height;
  r.colorspace = track.color_space.empty() ? track.pix_fmt : track.color_space;
  PhotoMetadata m;
  CreationTime(a.probe.creation_time, &m);
  if (!a.probe.make.empty()) m.camera_make = a.probe.make;
  if (!a.probe.model.empty()) m.camera_model = a.probe.model;
  m.gps_latitude = a.probe.latitude;
  m.gps_longitude = a.probe.longitude;
  m.gps_altitude = a.probe.altitude;
  r.metadata = std::move(m);
  if (opt.thumbnails) {
    StageTimer t(profile, Stage::kThumbnail);
    auto th = MakeThumbnail(a.poster, 1, opt.thumbnail);
    if (!th.ok()) return fail(th.status());
    r.thumbnail = std::move(th.value());
  }
  VideoRecord v;
  v.probe = std::move(a.probe);
  v.shots = std::move(a.shots);
  v.signature = std::move(a.signature);
  v.poster_time = a.poster_time;
  v.poster_content = a.poster_content;
  v.frames = a.frames;
  v.damaged = a.damaged;
  v.interlaced = a.interlaced;
  for (video::KeyFrame& k : a.key_frames) {
    VideoKeyFrame f;
    f.time = k.time;
    f.shot = k.shot;
    {
      StageTimer t(profile, Stage::kPerceptualHash);
      f.hashes = ComputePerceptualHashes(k.rgb, 1);
    }
    if (opt.encoder) {
      StageTimer t(profile, Stage::kModelInput);
      r.encoder_squares.push_back(opt.encoder->Square(k.rgb, 1));
      ++r.encoder_frames;
    }
    v.key_frames.push_back(f);
    k.rgb = Image();
  }
  r.video = std::move(v);
  r.outcome = ItemResult::Outcome::kNew;
  return r;
}

// The text-tower embedding of a document: the mean of its first chunks' embeddings (title and
// opening text weigh most, as a reader skims), L2-normalised. Chunks are cut at words, short
// enough that the tower's context (64 tokens for SigLIP, 77 for CLIP) holds each.
std::vector<float> EmbedDocument(ml::TextEncoder* enc, const DocumentRecord& d) {
  constexpr int kWordsPerChunk = 40, kChunks = 6;
  std::vector<std::string> chunks;
  std::string cur = d.title.empty() ? std::string() : d.title + ". ";
  int words = 0;
  size_t at = 0;
  const std::string& t = d.text;
  while (at < t.size() && int(chunks.size()) < kChunks) {
    while (at < t.size() && std::isspace(static_cast<unsigned char>(t[at]))) ++at;
    size_t end = at;
    while (end < t.size() && !std::isspace(static_cast<unsigned char>(t[end]))) ++end;
    if (end == at) break;
    cur.append(t, at, end - at).push_back(' ');
    at = end;
    if (++words == kWordsPerChunk) {
      chunks.push_back(std::move(cur));
      cur.clear();
      words = 0;
    }
  }
  if (!cur.empty() && int(chunks.size()) < kChunks) chunks.push_back(std::move(cur));
  if (chunks.empty()) return {};
  const int dim = enc->dim();
  std::vector<float> out(chunks.size() * size_t(dim));
  if (!enc->Encode(chunks, out.data(), int(chunks.size())).ok()) return {};
  std::vector<float> mean(size_t(dim), 0.0f);
  for (size_t c = 0; c < chunks.size(); ++c)
    for (int i = 0; i < dim; ++i) mean[size_t(i)] += out[c * size_t(dim) + size_t(i)];
  double norm = 0;
  for (float v : mean) norm += double(v) * v;
  if (norm <= 0) return {};
  const float inv = float(1.0 / std::sqrt(norm));
  for (float& v : mean) v *= inv;
  return mean;
}

ItemResult Process(const std::string& path, const PipelineOptions& opt,
                   const std::unordered_set<Hash128, Hash128Hasher>* complete, Profile* profile,
                   MemoryBudget* budget, int jobs) {
  ItemResult r;
  r.path = path;
  auto fail = [&](Status st) {
    r.outcome = ItemResult::Outcome::kFailed;
    r.status = std::move(st);
    return std::move(r);
  };
  if (Interrupted()) {
    r.outcome = ItemResult::Outcome::kInterrupted;
    return r;
  }
  std::vector<uint8_t> bytes;
  OpenedFile file;
  {
    StageTimer t(profile, Stage::kRead);
    auto opened = OpenFile(path);
    if (!opened.ok()) {
      if (opened.status().code() == Code::kNotFound)
        return fail(Status::NotFound("the file disappeared between the scan and the read"));
      return fail(opened.status());
    }
    file = std::move(opened.value());
  }
  r.identity = file.identity();
  r.format = file.format();
  r.format_name = FormatName(r.format);
  if (r.format == Format::kUnknown) {
    const std::string name = BaseName(path);
    if (opt.videos && MaybeVideo(file.head().data(), file.head().size())) {
      file = OpenedFile();  // the analyzer reads the file through libavformat
      return ProcessVideo(std::move(r), opt, complete, profile, budget, jobs);
    }
    if (opt.documents && doc::MaybeDocument(file.head().data(), file.head().size(), name))
      return ProcessDocument(std::move(r), file, opt, complete, profile, budget);
    std::string what = DescribeNonImage(file.head().data(), file.head().size());
    if (HasImageExtension(name))
      return fail(Status::Unsupported(fmt::format("not an image: the content is {}", what)));
    if (opt.videos && HasVideoExtension(name))
      return fail(Status::Unsupported(fmt::format("not a video: the content is {}", what)));
    r.outcome = ItemResult::Outcome::kSkipped;
    r.status = Status::Unsupported(fmt::format("not an image ({})", what));
    return r;
  }
  if (Status st = SizeLimit(r, opt); !st.ok()) return fail(st);
  BudgetHold hold(budget, r.identity.size);
  if (Status st = ReadAndHash(file, opt, profile, &bytes, &r.hash); !st.ok()) return fail(st);
  if (complete && complete->count(r.hash)) {
    r.outcome = ItemResult::Outcome::kKnown;
    return r;
  }
  if (Interrupted()) {
    r.outcome = ItemResult::Outcome::kInterrupted;
    return r;
  }
  {
    StageTimer t(profile, Stage::kMetadata);
    auto meta = ReadMetadata(bytes.data(), bytes.size());
    // Metadata is optional: an unreadable block leaves the photo without it, not failed.
    r.metadata = meta.ok() ? std::move(meta.value()) : PhotoMetadata{};
  }
  DecodeTarget target;
  target.min_long_edge = opt.thumbnails ? opt.thumbnail.size : 64;
  target.min_short_edge = opt.model_input ? opt.model.size : 64;
  if (opt.encoder)
    target.min_short_edge = std::max(target.min_short_edge, opt.encoder->input_size());
  Result<DecodedImage> decoded = Status::Internal("not decoded");
  {
    StageTimer t(profile, Stage::kDecode);
    decoded = DecodeReduced(bytes.data(), bytes.size(), r.format, target, opt.limits);
  }
  bytes = {};
  hold.Release();
  if (!decoded.ok()) return fail(decoded.status());
  DecodedImage& d = decoded.value();
  r.width = d.width;
  r.height = d.height;
  r.colorspace = d.colorspace;
  r.has_alpha = d.has_alpha;
  // libheif applies HEIF's own rotation on decode; EXIF orientation inside HEIF is informative.
  int orientation =
      (r.format == Format::kHeif || r.format == Format::kAvif) ? 1 : r.metadata->orientation;
  if (opt.thumbnails) {
    StageTimer t(profile, Stage::kThumbnail);
    auto th = MakeThumbnail(d.rgb, orientation, opt.thumbnail);
    if (!th.ok()) return fail(th.status());
    r.thumbnail = std::move(th.value());
  }
  {
    StageTimer t(profile, Stage::kPerceptualHash);
    r.hashes = ComputePerceptualHashes(d.rgb, orientation);
  }
  if (opt.model_input) {
    StageTimer t(profile, Stage::kModelInput);
    auto mi = MakeModelInput(d.rgb, orientation, opt.model);
    if (!mi.ok()) return fail(mi.status());
    r.model_input = std::move(mi.value());
  }
  if (opt.encoder) {
    StageTimer t(profile, Stage::kModelInput);
    r.encoder_input = opt.encoder->Preprocess(d.rgb, orientation);
    r.encoder_frames = 1;
  }
  r.outcome = ItemResult::Outcome::kNew;
  return r;
}

struct Work {
  ScanEntry entry;
  ItemResult result;
};

}  // namespace

Producers ProducersFor(const PipelineOptions& opt) {
  Producers p;
  if (opt.thumbnails)
    p.thumbnail = fmt::format("webp{}q{}@1", opt.thumbnail.size, opt.thumbnail.quality);
  p.hashes = "dhash64+phash64@1";
  p.metadata = "exiv2@1";
  if (opt.encoder) p.embedding = opt.encoder_id;
  if (opt.tagging) p.tags = opt.tagging->bank_id;
  if (opt.documents) p.document = fmt::format("text{}@1", opt.doc_limits.max_chars);
  if (opt.documents && opt.encoder && opt.document_encoder) p.document_embedding = opt.encoder_id;
  if (opt.videos)
    p.video = fmt::format("shots{}k{}@1", opt.video.max_key_frames, opt.video.frame_side);
  return p;
}

ItemResult ProcessFile(const std::string& path, const PipelineOptions& opt,
                       const std::unordered_set<Hash128, Hash128Hasher>* complete,
                       Profile* profile) {
  return Process(path, opt, complete, profile, nullptr, 1);
}

Result<RunSummary> RunPipeline(const PipelineOptions& opt, Catalog* catalog,
                               const std::vector<Sink*>& sinks, Profile* profile,
                               Progress* progress) {
  const uint64_t t0 = MonotonicNs();
  RunSummary sum;
  std::unordered_map<std::string, KnownLocation> known;
  std::unordered_set<Hash128, Hash128Hasher> complete;
  std::unordered_set<int64_t> complete_ids;
  const bool incremental = catalog && opt.incremental;
  Scanner scanner(opt.roots, opt.scan);
  if (incremental) {
    StageTimer t(profile, Stage::kScan);
    LUMEN_RETURN_IF_ERROR(catalog->LoadLocations(scanner.roots(), &known));
    LUMEN_RETURN_IF_ERROR(catalog->LoadCompleteAssets(ProducersFor(opt), &complete, &complete_ids));
  }

  int jobs =
      opt.jobs > 0 ? opt.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const size_t tokens = static_cast<size_t>(jobs) * 3;
  MemoryBudget budget(opt.memory_budget);
  uint64_t queued = 0, done = 0;
  bool scan_complete = false;
  Status fatal;

  // For the ETA: a second, cheap walk that only counts entries, ahead of the real scan (which
  // advances only as fast as items are processed).
  std::atomic<uint64_t> counted{0};
  std::atomic<bool> counted_all{false}, stop_counting{false};
  std::thread counter;
  if (progress && progress->visible()) {
    counter = std::thread([&] {
      Scanner walk(opt.roots, opt.scan);
      ScanEntry e;
      while (!stop_counting.load(std::memory_order_relaxed) && !Interrupted() && walk.Next(&e))
        counted.fetch_add(1, std::memory_order_relaxed);
      counted_all = !stop_counting.load() && !Interrupted();
    });
  }

  auto input = [&](tbb::flow_control& fc) -> Work* {
    StageTimer t(profile, Stage::kScan);
    ScanEntry e;
    for (;;) {
      if (Interrupted() || !fatal.ok()) {
        fc.stop();
        return nullptr;
      }
      if (opt.limit && queued >= opt.limit) {
        sum.limited = true;
        fc.stop();
        return nullptr;
      }
      if (!scanner.Next(&e)) {
        scan_complete = true;
        fc.stop();
        return nullptr;
      }
      if (incremental) {
        auto it = known.find(e.path);
        if (it != known.end()) {
          it->second.seen = true;
          const KnownLocation& k = it->second;
          // Unchanged, and nothing new to derive: a skipped non-image, or an asset that already
          // has every product this run makes (a new model or thumbnail size re-reads the file).
          bool same =
              e.kind == ScanEntry::Kind::kFile && k.identity == e.identity &&
              (k.state == LocationState::kSkipped ||
               (k.state == LocationState::kOk && k.asset_id && complete_ids.count(*k.asset_id)));
          if (same) {
            ++sum.unchanged;
            continue;
          }
        }
      }
      if (e.kind == ScanEntry::Kind::kFile && opt.skip_path && opt.skip_path(e.path)) {
        ++sum.unchanged;
        continue;
      }
      ++queued;
      auto* w = new Work();
      w->entry = std::move(e);
      return w;
    }
  };

  auto work = [&](Work* w) -> Work* {
    ScanEntry& e = w->entry;
    if (e.kind == ScanEntry::Kind::kFile) {
      // Nothing a file can trigger may end the run: an exception from a library (allocation
      // failure on a hostile header, a parser's throw) fails this file with its reason.
      try {
        w->result = Process(e.path, opt, incremental ? &complete : nullptr, profile, &budget, jobs);
      } catch (...) {
        w->result = ItemResult{};
        w->result.path = e.path;
        w->result.status = Status::Internal(fmt::format("internal error: {}", CurrentError()));
        w->result.outcome = ItemResult::Outcome::kFailed;
      }
    } else {
      w->result.path = e.path;
      w->result.status = e.status;
      w->result.outcome = e.kind == ScanEntry::Kind::kError ? ItemResult::Outcome::kFailed
                                                            : ItemResult::Outcome::kSkipped;
    }
    return w;
  };

  // Hands a finished item to the sinks and counts it.
  auto deliver = [&](std::unique_ptr<Work> w) {
    ItemResult& r = w->result;
    if (!fatal.ok()) return;
    {
      StageTimer t(profile, Stage::kWrite);
      for (Sink* s : sinks) {
        Status st;
        try {
          st = s->Accept(r);
        } catch (...) {
          st = Status::Internal(fmt::format("writing {}: {}", r.path, CurrentError()));
        }
        if (!st.ok()) {
          fatal = st;
          return;
        }
      }
    }
    switch (r.outcome) {
      case ItemResult::Outcome::kNew:
        ++sum.succeeded;
        break;
      case ItemResult::Outcome::kKnown:
        ++sum.succeeded;
        ++sum.known;
        break;
      case ItemResult::Outcome::kSkipped:
        ++sum.skipped;
        break;
      case ItemResult::Outcome::kFailed:
        ++sum.failed;
        if (sum.failures.size() < 1000) sum.failures.emplace_back(r.path, r.status.message());
        log::Debug("failed", {{"path", r.path}, {"reason", r.status.message()}});
        break;
      case ItemResult::Outcome::kInterrupted:
        break;
    }
    sum.bytes += r.identity.size;
    ++done;
    if (progress) {
      // Files handled so far (processed + unchanged) against the counter's total, once known.
      uint64_t total = counted_all.load() ? counted.load() : 0;
      progress->Update(done + sum.unchanged, std::max(total, done + sum.unchanged), sum.bytes,
                       sum.failed);
    }
  };

  // Items waiting for the image encoder. They hold no pipeline token, so the parallel stage keeps
  // decoding the next ones while a batch is encoded. The encoder sees frames, not items: a photo
  // is one frame, a video one per key frame, and every batch but the last is full (a video's
  // frames may span batches). Items leave in arrival order once all their frames are encoded.
  struct Waiting {
    std::unique_ptr<Work> w;
    int encoded = 0;
  };
  std::deque<Waiting> pending;
  size_t pending_frames = 0;  // not yet encoded
  const int dim = opt.encoder ? opt.encoder->dim() : 0;
  // Encodes the next `n` frames of the queue (and tags them).
  auto encode_frames = [&](size_t n) -> Status {
    StageTimer t(profile, Stage::kEncode);
    const size_t floats = opt.encoder->input_floats();
    std::vector<float> in(floats * n), out(size_t(dim) * n);
    std::vector<std::pair<Waiting*, int>> where;
    for (Waiting& x : pending) {
      ItemResult& r = x.w->result;
      for (int f = x.encoded; f < r.encoder_frames && where.size() < n; ++f) {
        if (!r.encoder_squares.empty()) {
          const std::vector<float> v = opt.encoder->Normalize(r.encoder_squares[size_t(f)]);
          std::copy(v.begin(), v.end(), in.begin() + long(where.size() * floats));
        } else {
          std::copy(r.encoder_input.begin() + long(size_t(f) * floats),
                    r.encoder_input.begin() + long(size_t(f + 1) * floats),
                    in.begin() + long(where.size() * floats));
        }
        where.emplace_back(&x, f);
      }
      if (where.size() == n) break;
    }
    LUMEN_RETURN_IF_ERROR(opt.encoder->Encode(in.data(), static_cast<int>(n), out.data()));
    std::vector<std::vector<tags::Tag>> scored;
    std::shared_ptr<const tags::LabelBank> bank;
    if (opt.tagging) {
      StageTimer tt(profile, Stage::kTags);
      const auto& tg = *opt.tagging;
      bank = tg.bank->Current();
      scored = tg.pools ? tg.pools->Score(out.data(), n, *bank, tg.calibration, tg.score)
                        : tags::ScoreImages(out.data(), n, *bank, tg.calibration, tg.score);
    }
    for (size_t i = 0; i < n; ++i) {
      auto [x, f] = where[i];
      ItemResult& r = x->w->result;
      if (r.frame_embeddings.empty()) r.frame_embeddings.resize(size_t(r.encoder_frames) * dim);
      std::copy(out.begin() + long(i * dim), out.begin() + long((i + 1) * dim),
                r.frame_embeddings.begin() + long(size_t(f) * dim));
      if (opt.tagging) {
        const auto& tg = *opt.tagging;
        r.frame_tags.resize(size_t(r.encoder_frames));
        // Scored against the smallest bank any of its frames saw (a bank may grow meanwhile).
        r.tag_terms = x->encoded == 0 && f == 0 ? bank->rows_done()
                                                : std::min(r.tag_terms, bank->rows_done());
        if (tg.drop_ancestors) tags::DropAncestors(*tg.vocab, &scored[i]);
        for (const tags::Tag& tag : scored[i]) {
          const tags::Term& term = tg.vocab->terms()[tag.term];
          r.frame_tags[size_t(f)].push_back(
              {term.text, term.category, tg.vocab->Path(tag.term), tag.confidence});
        }
      }
      ++x->encoded;
    }
    pending_frames -= n;
    return Status::Ok();
  };
  // An item whose frames are all encoded: a photo's embedding and tags are its frame's; a video's
  // embedding is its frames' mean, L2-normalised, and its tags each term's best.
  auto finish_encoded = [&](ItemResult& r) {
    r.encoder_input = {};
    r.encoder_squares = {};
    if (r.frame_embeddings.empty()) return;
    if (!r.video) {
      r.embedding = std::move(r.frame_embeddings);
      r.frame_embeddings = {};
      if (!r.frame_tags.empty()) r.tags = std::move(r.frame_tags[0]);
      r.frame_tags = {};
      return;
    }
    std::vector<float> mean(size_t(dim), 0.0f);
    for (int f = 0; f < r.encoder_frames; ++f)
      for (int i = 0; i < dim; ++i) mean[size_t(i)] += r.frame_embeddings[size_t(f) * dim + i];
    double norm = 0;
    for (float v : mean) norm += double(v) * v;
    if (norm > 0)
      for (float& v : mean) v = float(v / std::sqrt(norm));
    r.embedding = std::move(mean);
    std::unordered_map<std::string, size_t> at;
    for (const auto& frame : r.frame_tags)
      for (const auto& t : frame) {
        auto [it, added] = at.emplace(t.name, r.tags.size());
        if (added)
          r.tags.push_back(t);
        else if (t.confidence > r.tags[it->second].confidence)
          r.tags[it->second].confidence = t.confidence;
      }
    std::stable_sort(r.tags.begin(), r.tags.end(),
                     [](const auto& a, const auto& b) { return a.confidence > b.confidence; });
    if (opt.tagging && r.tags.size() > opt.tagging->score.max_tags)
      r.tags.resize(opt.tagging->score.max_tags);
  };
  auto deliver_encoded = [&] {
    while (!pending.empty() &&
           pending.front().encoded == pending.front().w->result.encoder_frames) {
      std::unique_ptr<Work> w = std::move(pending.front().w);
      pending.pop_front();
      finish_encoded(w->result);
      deliver(std::move(w));
    }
  };
  // With `run_encoder` false (stopping), the rest is written without embeddings: those assets
  // stay incomplete for the encoder and the next run encodes them.
  auto encode_pending = [&](bool run_encoder) {
    const size_t batch = size_t(std::max(1, opt.batch_size));
    while (run_encoder && fatal.ok() && pending_frames > 0) {
      Status st = encode_frames(std::min(batch, pending_frames));
      if (!st.ok()) fatal = st;
      deliver_encoded();
    }
    while (!pending.empty()) {
      std::unique_ptr<Work> w = std::move(pending.front().w);
      pending.pop_front();
      w->result.encoder_input = {};
      w->result.encoder_squares = {};
      w->result.frame_embeddings = {};
      w->result.frame_tags = {};
      w->result.tag_terms = 0;
      deliver(std::move(w));
    }
    pending_frames = 0;
  };

  // The text tower, loaded at the first new document (most runs have none).
  ml::TextEncoder* doc_encoder = nullptr;
  bool doc_encoder_loaded = false;
  auto output = [&](Work* w) {
    std::unique_ptr<Work> owned(w);
    ItemResult& r = w->result;
    if (r.outcome == ItemResult::Outcome::kInterrupted || !fatal.ok()) return;
    if (r.outcome == ItemResult::Outcome::kNew && r.document && opt.encoder &&
        opt.document_encoder) {
      StageTimer t(profile, Stage::kDocument);
      if (!doc_encoder_loaded) {
        doc_encoder = opt.document_encoder();
        doc_encoder_loaded = true;
      }
      if (doc_encoder) r.embedding = EmbedDocument(doc_encoder, *r.document);
    }
    if (opt.encoder && r.encoder_frames > 0) {
      pending_frames += size_t(r.encoder_frames);
      pending.push_back({std::move(owned), 0});
      const size_t batch = size_t(std::max(1, opt.batch_size));
      while (fatal.ok() && pending_frames >= batch) {
        if (Status st = encode_frames(batch); !st.ok()) fatal = st;
        deliver_encoded();
      }
      return;
    }
    deliver(std::move(owned));
  };

  tbb::task_arena arena(jobs);
  arena.execute([&] {
    try {
      tbb::parallel_pipeline(
          tokens, tbb::make_filter<void, Work*>(tbb::filter_mode::serial_in_order, input) &
                      tbb::make_filter<Work*, Work*>(tbb::filter_mode::parallel, work) &
                      tbb::make_filter<Work*, void>(tbb::filter_mode::serial_out_of_order, output));
    } catch (...) {
      // Never past this thread boundary: the run ends with the reason, work so far committed.
      if (fatal.ok()) fatal = Status::Internal(fmt::format("pipeline: {}", CurrentError()));
    }
  });
  // The last partial batch: encoded, unless we are stopping (then written without embeddings;
  // their assets stay incomplete for the encoder and the next run encodes them).
  try {
    encode_pending(!Interrupted());
  } catch (...) {
    if (fatal.ok()) fatal = Status::Internal(fmt::format("encoder: {}", CurrentError()));
  }
  stop_counting = true;
  if (counter.joinable()) counter.join();
  if (progress)
    progress->Update(done + sum.unchanged, done + sum.unchanged, sum.bytes, sum.failed, true);

  sum.interrupted = Interrupted();
  for (Sink* s : sinks) {
    Status st = s->Finish();
    if (fatal.ok() && !st.ok()) fatal = st;
  }
  if (!fatal.ok()) return fatal;
  // Locations not seen in a complete scan are gone from disk: mark them missing (never forget
  // them: their asset keeps its derived data and a later scan may find the file again).
  if (incremental && scan_complete && !sum.interrupted) {
    LUMEN_RETURN_IF_ERROR(catalog->Begin());
    for (auto& [path, k] : known) {
      if (k.seen || k.state == LocationState::kMissing) continue;
      LUMEN_RETURN_IF_ERROR(catalog->MarkMissing(k.id, opt.run_id));
      ++sum.missing;
    }
    LUMEN_RETURN_IF_ERROR(catalog->Commit());
  }
  sum.elapsed_s = (MonotonicNs() - t0) / 1e9;
  return sum;
}

}  // namespace lumen
