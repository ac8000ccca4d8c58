// PDF through poppler-cpp: text per page, the Info dictionary, scanned pages rendered.
#include <poppler-document.h>
#include <poppler-global.h>
#include <poppler-image.h>
#include <poppler-page-renderer.h>
#include <poppler-page.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "text.h"

namespace lumen::doc {
namespace detail {
namespace {

// Poppler reports every oddity of a file on stderr; lumen reports the outcome once itself.
void Silent(const std::string&, void*) {}

std::unique_ptr<poppler::document> Open(const uint8_t* data, size_t size, Status* why) {
  static std::once_flag once;
  std::call_once(once, [] { poppler::set_debug_error_function(Silent, nullptr); });
  if (size > size_t(INT_MAX)) {
    *why = Status::TooLarge("PDF above 2 GB");
    return nullptr;
  }
  std::unique_ptr<poppler::document> d(
      poppler::document::load_from_raw_data(reinterpret_cast<const char*>(data), int(size)));
  if (!d) {
    // Poppler gives no reason; an /Encrypt dictionary is the usual one for a file it rejects.
    const std::string_view all(reinterpret_cast<const char*>(data), size);
    *why = all.find("/Encrypt") != std::string_view::npos
               ? Status::Unsupported("encrypted PDF (needs a password)")
               : Status::Corrupt("not a PDF poppler can read");
    return nullptr;
  }
  if (d->is_locked()) {
    *why = Status::Unsupported("encrypted PDF (needs a password)");
    return nullptr;
  }
  return d;
}

std::string Utf8(const poppler::ustring& u) {
  const poppler::byte_array b = u.to_utf8();
  return std::string(b.begin(), b.end());
}

std::string FromEpoch(time_t t) {
  if (t <= 0) return "";
  std::tm tm{};
  if (!gmtime_r(&t, &tm)) return "";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return buf;
}

}  // namespace

Result<DocText> ExtractPdf(const uint8_t* data, size_t size, const DocLimits& lim) {
  Deadline deadline(lim.max_seconds);
  Status why;
  auto d = Open(data, size, &why);
  if (!d) return why;
  DocText out;
  out.format = DocFormat::kPdf;
  out.pages = std::max(0, d->pages());
  auto clean = [](const std::string& s) {
    TextSink t(300);
    t.Add(s);
    return t.Take();
  };
  out.title = clean(Utf8(d->get_title()));
  out.author = clean(Utf8(d->get_author()));
  out.created = FromEpoch(d->get_creation_date_t());
  TextSink sink(lim.max_chars);
  const int n = std::min(out.pages, lim.max_pages);
  int read = 0;
  size_t visible = 0;  // non-space characters of the pages read
  for (int i = 0; i < n && !sink.full(); ++i) {
    if (deadline.passed())
      return Status::TooLarge(
          fmt::format("text extraction stopped after {:.0f} s at page {}", lim.max_seconds, i + 1));
    std::unique_ptr<poppler::page> p(d->create_page(i));
    ++read;
    if (!p) continue;
    const std::string text = Utf8(p->text());
    for (char c : text) visible += !std::isspace(static_cast<unsigned char>(c));
    sink.Add(text);
    sink.Break();
  }
  out.truncated = sink.full() || n < out.pages;
  out.text = sink.Take();
  // A scan: pages without a text layer (fewer than ~20 visible characters a page).
  out.needs_render = read > 0 && visible < size_t(20 * read);
  return out;
}

}  // namespace detail

Result<Image> RenderPdfPage(const uint8_t* data, size_t size, int page, int max_edge) {
  Status why;
  auto d = detail::Open(data, size, &why);
  if (!d) return why;
  if (page < 0 || page >= d->pages())
    return Status::Invalid(fmt::format("the PDF has no page {}", page + 1));
  std::unique_ptr<poppler::page> p(d->create_page(page));
  if (!p) return Status::Corrupt(fmt::format("page {} cannot be read", page + 1));
  const poppler::rectf box = p->page_rect();
  const double longest = std::max(box.width(), box.height());
  if (!(longest > 0)) return Status::Corrupt(fmt::format("page {} has no size", page + 1));
  // No lower bound on the resolution: a page of 1.4e7 points at even 1 dpi would be 200k pixels
  // square (a hostile MediaBox); the render is at most max_edge on its long side.
  const double dpi = std::min(72.0 * max_edge / longest, 1200.0);
  if (!(longest * dpi / 72.0 <= max_edge + 1.0))
    return Status::Corrupt(fmt::format("page {} has an unusable size", page + 1));
  poppler::page_renderer r;
  r.set_render_hint(poppler::page_renderer::antialiasing, true);
  r.set_render_hint(poppler::page_renderer::text_antialiasing, true);
  r.set_image_format(poppler::image::format_rgb24);
  poppler::image img = r.render_page(p.get(), dpi, dpi);
  if (!img.is_valid() || img.width() <= 0 || img.height() <= 0)
    return Status::Corrupt(fmt::format("page {} cannot be rendered", page + 1));
  // format_rgb24 is packed R, G, B (3 bytes a pixel), rows bytes_per_row() apart (padded).
  if (img.bytes_per_row() < 3 * img.width())
    return Status::Corrupt(fmt::format("page {} rendered with an unexpected layout", page + 1));
  Image out(img.width(), img.height(), 3);
  const char* bits = img.const_data();
  for (int y = 0; y < img.height(); ++y)
    std::memcpy(out.row(y), bits + size_t(y) * size_t(img.bytes_per_row()),
                size_t(img.width()) * 3);
  return out;
}

}  // namespace lumen::doc
