// ZIP-based documents: OOXML (DOCX, PPTX, XLSX), OpenDocument (ODT, ODS, ODP) and EPUB, through
// libzip (entries read from memory, inflation counted against the limits, archives with absurd
// entry counts refused before they are opened) and libxml2's streaming reader (no tree, no
// entity expansion, no network).
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlreader.h>
#include <zip.h>

#include <algorithm>
#include <climits>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "text.h"

namespace lumen::doc::detail {
namespace {

// The number of entries the central directory declares (from the end-of-central-directory
// record, or its ZIP64 form), or -1 when there is none to read. libzip builds a table of every
// entry on open: a million-entry archive would cost seconds and hundreds of MB before the first
// byte of text, so that count is checked first.
int64_t DeclaredEntries(const uint8_t* data, size_t size) {
  auto u16 = [&](size_t at) { return uint32_t(data[at]) | uint32_t(data[at + 1]) << 8; };
  auto u32 = [&](size_t at) { return u16(at) | u16(at + 2) << 16; };
  auto u64 = [&](size_t at) { return uint64_t(u32(at)) | uint64_t(u32(at + 4)) << 32; };
  if (size < 22) return -1;
  const size_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  for (size_t at = size - 22;; --at) {
    if (u32(at) == 0x06054b50) {
      int64_t n = std::max(u16(at + 8), u16(at + 10));
      if (n == 0xFFFF && at >= 20 && u32(at - 20) == 0x07064b50) {
        const uint64_t z64 = u64(at - 20 + 8);
        if (size >= 56 && z64 <= size - 56 && u32(size_t(z64)) == 0x06064b50)
          n = int64_t(std::min<uint64_t>(u64(size_t(z64) + 32), uint64_t(INT64_MAX)));
      }
      return n;
    }
    if (at == lowest) return -1;
  }
}

constexpr int64_t kMaxEntries = 100000;  // office files hold tens to a few thousand

class Zip {
 public:
  Zip(const uint8_t* data, size_t size, const DocLimits& lim) : lim_(lim) {
    if (const int64_t n = DeclaredEntries(data, size); n > kMaxEntries) {
      why_ = Status::TooLarge(fmt::format(
          "the ZIP lists {} entries (more than {} is not an office file)", n, kMaxEntries));
      return;
    }
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t* src = zip_source_buffer_create(data, size, 0, &err);
    if (src) {
      z_ = zip_open_from_source(src, ZIP_RDONLY, &err);
      if (!z_) zip_source_free(src);
    }
    zip_error_fini(&err);
    if (!z_) why_ = Status::Corrupt("not a ZIP archive libzip can read");
  }
  ~Zip() {
    if (z_) zip_discard(z_);
  }
  Zip(const Zip&) = delete;
  Zip& operator=(const Zip&) = delete;
  bool ok() const { return z_ != nullptr; }
  const Status& why() const { return why_; }
  bool Has(const std::string& name) const {
    return z_ && zip_name_locate(z_, name.c_str(), 0) >= 0;
  }

  // The entry's bytes, or NotFound; TooLarge once it (or the ZIP in all) inflates past a limit.
  Result<std::string> Read(const std::string& name) {
    const zip_int64_t index = zip_name_locate(z_, name.c_str(), 0);
    if (index < 0) return Status::NotFound(fmt::format("no {} in the ZIP", name));
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z_, zip_uint64_t(index), 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE) &&
        st.size > lim_.max_entry)
      return TooBig(name);
    std::unique_ptr<zip_file_t, decltype(&zip_fclose)> f(
        zip_fopen_index(z_, zip_uint64_t(index), 0), zip_fclose);
    if (!f) return Status::Corrupt(fmt::format("ZIP entry {} cannot be read", name));
    std::string out;
    char buf[1 << 16];
    for (;;) {
      const zip_int64_t n = zip_fread(f.get(), buf, sizeof buf);
      if (n < 0) return Status::Corrupt(fmt::format("ZIP entry {} is damaged", name));
      if (n == 0) break;
      out.append(buf, size_t(n));
      unpacked_ += uint64_t(n);
      if (out.size() > lim_.max_entry) return TooBig(name);
      if (unpacked_ > lim_.max_unpacked)
        return Status::TooLarge(
            fmt::format("the ZIP unpacks past {} MB in all", lim_.max_unpacked >> 20));
    }
    return out;
  }

 private:
  Status TooBig(const std::string& name) const {
    return Status::TooLarge(
        fmt::format("ZIP entry {} unpacks past {} MB", name, lim_.max_entry >> 20));
  }
  zip_t* z_ = nullptr;
  const DocLimits& lim_;
  Status why_;
  uint64_t unpacked_ = 0;
};

std::string XmlError(const std::string& name) {
  std::string why = "not well-formed";
  if (const xmlError* e = xmlGetLastError(); e && e->message) {
    why = e->message;
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    why += fmt::format(" (line {})", e->line);
  }
  return fmt::format("broken XML in {}: {}", name, why);
}

// Callbacks of a streamed part, by local name (namespace prefixes dropped). `enter` returns
// false to skip the element's subtree (`leave` is then not called); `text` gets character data
// with the local name of the element that holds it.
struct Events {
  std::function<bool(xmlTextReaderPtr, std::string_view name, std::string_view parent)> enter;
  std::function<void(std::string_view name)> leave;
  std::function<void(std::string_view parent, std::string_view text)> text;
};

std::string Attr(xmlTextReaderPtr r, const char* name) {
  xmlChar* v = xmlTextReaderGetAttribute(r, reinterpret_cast<const xmlChar*>(name));
  if (!v) return {};
  std::string s(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return s;
}

enum class Doctype { kRefuse, kAllow };

// Streams an XML part through libxml2's reader: no tree is built (a DOCX of 30 MB of empty
// paragraphs takes 25 times that as a DOM), no network, entities never substituted (their
// references are skipped), and office parts, which never declare a DOCTYPE, are refused when
// they do (the carrier of entity bombs). Stops early once `stop` is full.
Status Stream(const std::string& bytes, const std::string& name, const Events& ev,
              const TextSink* stop, const Deadline& deadline, Doctype doctype = Doctype::kRefuse) {
  if (bytes.size() > size_t(INT32_MAX)) return Status::TooLarge(name + " is too large");
  xmlResetLastError();
  std::unique_ptr<xmlTextReader, decltype(&xmlFreeTextReader)> r(
      xmlReaderForMemory(bytes.data(), int(bytes.size()), name.c_str(), nullptr,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING),
      xmlFreeTextReader);
  if (!r) return Status::Corrupt(XmlError(name));
  std::vector<std::string> open;  // local names of the open elements
  bool skip = false;
  for (uint64_t n = 0;; ++n) {
    const int ret = skip ? xmlTextReaderNext(r.get()) : xmlTextReaderRead(r.get());
    skip = false;
    if (ret < 0) return Status::Corrupt(XmlError(name));
    if (ret == 0 || (stop && stop->full())) break;
    if ((n & 4095) == 0 && deadline.passed())
      return Status::TooLarge(fmt::format("text extraction stopped in {} (time limit)", name));
    const int type = xmlTextReaderNodeType(r.get());
    if (type == XML_READER_TYPE_DOCUMENT_TYPE && doctype == Doctype::kRefuse)
      return Status::Corrupt(
          fmt::format("{} declares a DOCTYPE, which office files never do (refused)", name));
    if (type == XML_READER_TYPE_ELEMENT) {
      const xmlChar* ln = xmlTextReaderConstLocalName(r.get());
      const std::string local = ln ? reinterpret_cast<const char*>(ln) : "";
      const bool empty = xmlTextReaderIsEmptyElement(r.get()) == 1;
      const std::string_view parent = open.empty() ? std::string_view() : open.back();
      if (ev.enter && !ev.enter(r.get(), local, parent)) {
        skip = !empty;
      } else if (empty) {
        if (ev.leave) ev.leave(local);
      } else {
        open.push_back(local);
      }
    } else if (type == XML_READER_TYPE_END_ELEMENT) {
      if (open.empty()) continue;
      const std::string local = std::move(open.back());
      open.pop_back();
      if (ev.leave) ev.leave(local);
    } else if (type == XML_READER_TYPE_TEXT || type == XML_READER_TYPE_CDATA ||
               type == XML_READER_TYPE_WHITESPACE ||
               type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE) {
      const xmlChar* v = xmlTextReaderConstValue(r.get());
      if (v && ev.text)
        ev.text(open.empty() ? std::string_view() : open.back(), reinterpret_cast<const char*>(v));
    }
  }
  return Status::Ok();
}

struct Meta {
  std::string title, author, created, language;
};

// Dublin Core (OOXML core properties, OPF metadata) or ODF meta: the first non-empty value of
// each field.
Events MetaEvents(Meta* m, bool odf, std::string* held) {
  Events ev;
  ev.enter = [held](xmlTextReaderPtr, std::string_view, std::string_view) {
    held->clear();
    return true;
  };
  ev.text = [held](std::string_view, std::string_view t) {
    if (held->size() < 4096) *held += t;
  };
  ev.leave = [m, odf, held](std::string_view name) {
    TextSink t(300);
    t.Add(*held);
    held->clear();
    std::string v = t.Take();
    if (v.empty()) return;
    auto set = [&](std::string* field, std::string value) {
      if (field->empty()) *field = std::move(value);
    };
    if (name == "title") set(&m->title, v);
    if (name == "creator" || (odf && name == "initial-creator")) set(&m->author, v);
    if (name == (odf ? "creation-date" : "created") || name == "date") set(&m->created, IsoDate(v));
    if (name == "language") set(&m->language, v);
  };
  return ev;
}

// OOXML parts: text of w:t / a:t / t runs, paragraphs (w:p, a:p) on their own lines.
Events OoxmlEvents(TextSink* sink) {
  Events ev;
  ev.enter = [](xmlTextReaderPtr, std::string_view name, std::string_view) {
    return name != "delText" && name != "instrText" && name != "rPh";  // deleted, field codes
  };
  ev.leave = [sink](std::string_view name) {
    if (name == "p" || name == "br" || name == "cr") sink->Break();
    if (name == "tab") sink->Space();
  };
  ev.text = [sink](std::string_view parent, std::string_view t) {
    if (parent == "t") sink->Add(t);
  };
  return ev;
}

// ODF content: everything under office:body, paragraphs and headings on their own lines.
Events OdfEvents(TextSink* sink, int* pages, int* in_body) {
  Events ev;
  ev.enter = [pages, in_body](xmlTextReaderPtr, std::string_view name, std::string_view parent) {
    if (name == "body") ++*in_body;
    if (name == "page" || (name == "table" && parent == "spreadsheet")) ++*pages;
    return name != "annotation" && name != "tracked-changes";
  };
  ev.leave = [sink, in_body](std::string_view name) {
    if (name == "body") --*in_body;
    if (name == "p" || name == "h" || name == "line-break" || name == "table-row") sink->Break();
    if (name == "s" || name == "tab" || name == "table-cell") sink->Space();
  };
  ev.text = [sink, in_body](std::string_view, std::string_view t) {
    if (*in_body > 0) sink->Add(t);
  };
  return ev;
}

bool HtmlBlock(std::string_view n) {
  return n == "p" || n == "div" || n == "br" || n == "li" || n == "tr" || n == "h1" || n == "h2" ||
         n == "h3" || n == "h4" || n == "h5" || n == "h6" || n == "blockquote" || n == "section" ||
         n == "title";
}

bool HtmlSkipped(std::string_view n) {
  return n == "script" || n == "style" || n == "head";
}

// XHTML chapters: body text, block elements on their own lines, scripts and styles skipped.
Events XhtmlEvents(TextSink* sink) {
  Events ev;
  ev.enter = [](xmlTextReaderPtr, std::string_view name, std::string_view) {
    return !HtmlSkipped(name);
  };
  ev.leave = [sink](std::string_view name) {
    if (HtmlBlock(name)) sink->Break();
  };
  ev.text = [sink](std::string_view, std::string_view t) { sink->Add(t); };
  return ev;
}

// A chapter that is not well-formed XHTML, through the forgiving HTML parser (a tree: only for
// chapters of a few MB).
void HtmlTreeText(const xmlNode* n, TextSink* sink) {
  for (; n && !sink->full(); n = n->next) {
    const std::string_view name =
        n->name ? std::string_view(reinterpret_cast<const char*>(n->name)) : std::string_view();
    if (n->type == XML_ELEMENT_NODE) {
      if (HtmlSkipped(name)) continue;
      HtmlTreeText(n->children, sink);
      if (HtmlBlock(name)) sink->Break();
    } else if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) && n->content) {
      sink->Add(reinterpret_cast<const char*>(n->content));
    }
  }
}

bool HtmlFallback(const std::string& bytes, const std::string& name, TextSink* sink) {
  if (bytes.size() > (4u << 20)) return false;
  std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)> d(
      htmlReadMemory(bytes.data(), int(bytes.size()), name.c_str(), nullptr,
                     HTML_PARSE_NONET | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                         HTML_PARSE_RECOVER | HTML_PARSE_NOBLANKS),
      xmlFreeDoc);
  if (!d) return false;
  HtmlTreeText(xmlDocGetRootElement(d.get()), sink);
  return true;
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

// "%20" and friends in an EPUB href; a path that climbs out (..) is refused.
std::string ResolveHref(const std::string& base, const std::string& href) {
  std::string h;
  for (size_t i = 0; i < href.size(); ++i) {
    if (href[i] == '%' && i + 2 < href.size() &&
        std::isxdigit(static_cast<unsigned char>(href[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(href[i + 2]))) {
      h += char(std::stoi(href.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else if (href[i] == '#') {
      break;
    } else {
      h += href[i];
    }
  }
  std::vector<std::string> parts;
  const std::string full = base + h;
  size_t at = 0;
  while (at <= full.size()) {
    size_t slash = full.find('/', at);
    if (slash == std::string::npos) slash = full.size();
    const std::string part = full.substr(at, slash - at);
    at = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) return {};
      parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

}  // namespace

DocFormat DetectZip(const uint8_t* data, size_t size, std::string_view ext) {
  DocLimits small;
  small.max_entry = 256;
  Zip z(data, size, small);
  if (!z.ok()) {
    // Refused before it was opened (too many entries): what the name says, so that extraction
    // reports the reason instead of the file passing as "not a document".
    if (z.why().code() != Code::kTooLarge) return DocFormat::kUnknown;
    for (DocFormat f : {DocFormat::kDocx, DocFormat::kPptx, DocFormat::kXlsx, DocFormat::kOdt,
                        DocFormat::kOds, DocFormat::kOdp, DocFormat::kEpub})
      if (ext == DocFormatName(f)) return f;
    return DocFormat::kUnknown;
  }
  if (z.Has("mimetype")) {
    auto m = z.Read("mimetype");
    if (m.ok()) {
      std::string s = *m;
      while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
      if (s == "application/vnd.oasis.opendocument.text") return DocFormat::kOdt;
      if (s == "application/vnd.oasis.opendocument.spreadsheet") return DocFormat::kOds;
      if (s == "application/vnd.oasis.opendocument.presentation") return DocFormat::kOdp;
      if (s == "application/epub+zip") return DocFormat::kEpub;
    }
  }
  if (z.Has("word/document.xml")) return DocFormat::kDocx;
  if (z.Has("ppt/presentation.xml") || z.Has("ppt/slides/slide1.xml")) return DocFormat::kPptx;
  if (z.Has("xl/workbook.xml")) return DocFormat::kXlsx;
  return DocFormat::kUnknown;
}

Result<DocText> ExtractZip(const uint8_t* data, size_t size, DocFormat f, const DocLimits& lim) {
  Deadline deadline(lim.max_seconds);
  Zip z(data, size, lim);
  if (!z.ok()) return z.why();
  DocText out;
  out.format = f;
  TextSink sink(lim.max_chars);
  // Reads and streams one part; `missing_ok`: an absent part is no error.
  auto part = [&](const std::string& name, const Events& ev, const TextSink* stop,
                  Doctype doctype = Doctype::kRefuse) -> Status {
    if (deadline.passed())
      return Status::TooLarge(
          fmt::format("text extraction stopped after {:.0f} s", lim.max_seconds));
    auto bytes = z.Read(name);
    if (!bytes.ok()) return bytes.status();
    return Stream(*bytes, name, ev, stop, deadline, doctype);
  };
  Meta meta;
  std::string held;
  // Metadata is optional: a broken one is ignored, one too large to read is not.
  auto read_meta = [&](const std::string& name, bool odf) -> Status {
    if (!z.Has(name)) return Status::Ok();
    Status st = part(name, MetaEvents(&meta, odf, &held), nullptr);
    return st.code() == Code::kTooLarge ? st : Status::Ok();
  };
  if (f == DocFormat::kDocx || f == DocFormat::kPptx || f == DocFormat::kXlsx) {
    if (Status st = read_meta("docProps/core.xml", false); !st.ok()) return st;
    if (f == DocFormat::kDocx) {
      if (Status st = part("word/document.xml", OoxmlEvents(&sink), &sink); !st.ok()) return st;
    } else if (f == DocFormat::kPptx) {
      int n = 0;
      for (; n < lim.max_pages && !sink.full(); ++n) {
        const std::string name = fmt::format("ppt/slides/slide{}.xml", n + 1);
        if (!z.Has(name)) break;
        if (Status st = part(name, OoxmlEvents(&sink), &sink); !st.ok()) return st;
        sink.Break();
      }
      out.pages = n;
      if (n == lim.max_pages && z.Has(fmt::format("ppt/slides/slide{}.xml", n + 1)))
        out.truncated = true;
    } else {
      // Shared strings: one per <si>, its runs' text (phonetic runs skipped).
      std::vector<std::string> shared;
      if (z.Has("xl/sharedStrings.xml")) {
        std::string cur;
        Events ev;
        ev.enter = [](xmlTextReaderPtr, std::string_view name, std::string_view) {
          return name != "rPh";
        };
        ev.text = [&](std::string_view parent, std::string_view t) {
          if (parent == "t" && cur.size() < 4096) cur += t;
        };
        ev.leave = [&](std::string_view name) {
          if (name != "si" || shared.size() >= 1000000) return;
          TextSink one(4096);
          one.Add(cur);
          shared.push_back(one.Take());
          cur.clear();
        };
        if (Status st = part("xl/sharedStrings.xml", ev, nullptr); !st.ok()) return st;
      }
      int n = 0;
      for (; n < lim.max_pages && !sink.full(); ++n) {
        const std::string name = fmt::format("xl/worksheets/sheet{}.xml", n + 1);
        if (!z.Has(name)) break;
        std::string type;  // of the open cell: "s" is an index into the shared strings
        Events ev;
        ev.enter = [&](xmlTextReaderPtr r, std::string_view el, std::string_view) {
          if (el == "c") type = Attr(r, "t");
          return el != "f" && el != "rPh";  // formulas: their values are read
        };
        ev.text = [&](std::string_view parent, std::string_view t) {
          if (parent == "v") {
            if (type == "s") {
              const std::string val(t);
              char* end = nullptr;
              const unsigned long i = std::strtoul(val.c_str(), &end, 10);
              if (end && *end == 0 && i < shared.size()) sink.Add(shared[i]);
            } else {
              sink.Add(t);
            }
          } else if (parent == "t") {  // inline strings
            sink.Add(t);
          }
        };
        ev.leave = [&](std::string_view el) {
          if (el == "c") sink.Space();
          if (el == "row") sink.Break();
        };
        if (Status st = part(name, ev, &sink); !st.ok()) return st;
        sink.Break();
      }
      out.pages = n;
    }
  } else if (f == DocFormat::kOdt || f == DocFormat::kOds || f == DocFormat::kOdp) {
    if (Status st = read_meta("meta.xml", true); !st.ok()) return st;
    int pages = 0, in_body = 0;
    if (Status st = part("content.xml", OdfEvents(&sink, &pages, &in_body), &sink); !st.ok())
      return st;
    out.pages = f == DocFormat::kOdt ? 0 : pages;
  } else if (f == DocFormat::kEpub) {
    std::string opf;
    Events find;
    find.enter = [&](xmlTextReaderPtr r, std::string_view name, std::string_view) {
      if (opf.empty() && name == "rootfile") opf = Attr(r, "full-path");
      return true;
    };
    if (Status st = part("META-INF/container.xml", find, nullptr); !st.ok()) return st;
    if (opf.empty()) return Status::Corrupt("EPUB without a rootfile in META-INF/container.xml");
    // The package: metadata, the manifest (id -> href) and the spine (reading order).
    std::unordered_map<std::string, std::string> manifest;
    std::vector<std::string> spine;
    Events pkg = MetaEvents(&meta, false, &held);
    const auto meta_enter = pkg.enter;
    pkg.enter = [&](xmlTextReaderPtr r, std::string_view name, std::string_view parent) {
      if (name == "item" && manifest.size() < 1000000)
        manifest.emplace(Attr(r, "id"), Attr(r, "href"));
      if (name == "itemref" && spine.size() < 1000000) spine.push_back(Attr(r, "idref"));
      return meta_enter(r, name, parent);
    };
    if (Status st = part(opf, pkg, nullptr, Doctype::kAllow); !st.ok()) return st;
    out.pages = int(spine.size());
    const std::string base = Dirname(opf);
    int read = 0;
    // At most max_pages chapters read, and at most 4 times that many spine entries looked at
    // (a spine of dangling references costs nothing either).
    size_t tried = 0;
    for (const std::string& id : spine) {
      if (read >= lim.max_pages || sink.full() || ++tried > 4 * size_t(lim.max_pages)) {
        out.truncated = true;
        break;
      }
      auto it = manifest.find(id);
      if (it == manifest.end()) continue;
      const std::string path = ResolveHref(base, it->second);
      if (path.empty() || !z.Has(path)) continue;
      if (deadline.passed())
        return Status::TooLarge(
            fmt::format("text extraction stopped after {:.0f} s", lim.max_seconds));
      auto bytes = z.Read(path);
      if (!bytes.ok()) {
        if (bytes.status().code() == Code::kTooLarge) return bytes.status();
        continue;  // one unreadable chapter: the rest still counts
      }
      // Well-formed XHTML streams; anything else goes to the HTML parser from a clean start.
      TextSink chapter(lim.max_chars);
      Status st = Stream(*bytes, path, XhtmlEvents(&chapter), &chapter, deadline, Doctype::kAllow);
      if (st.code() == Code::kTooLarge) return st;
      if (!st.ok()) {
        chapter = TextSink(lim.max_chars);
        if (!HtmlFallback(*bytes, path, &chapter)) continue;
      }
      ++read;
      sink.Add(chapter.Take());
      sink.Break();
    }
  }
  out.title = meta.title;
  out.author = meta.author;
  out.created = meta.created;
  out.language = meta.language;
  out.truncated = out.truncated || sink.full();
  out.text = sink.Take();
  return out;
}

}  // namespace lumen::doc::detail
