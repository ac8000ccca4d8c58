// Documents as a media kind (issue 17): the text and the document's own metadata of plain text,
// Markdown, PDF (poppler-cpp), OOXML (DOCX/PPTX/XLSX) and OpenDocument (ODT/ODS/ODP) files and
// EPUB (libzip + libxml2), and RTF (parsed here), for the catalog, text search and describe.
//
// Bounded whatever the input: at most `max_chars` bytes of text are kept (the reading stops
// there), at most `max_pages` pages/slides/sheets/chapters are opened, a ZIP entry is read only
// up to `max_entry` bytes and all entries together up to `max_unpacked` (counted as they are
// inflated: the sizes a ZIP declares can lie), XML entities are never expanded (billion laughs),
// network access by the XML parser is off, and a document stops after `max_seconds`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lumen/image/image.h"
#include "lumen/util/status.h"

namespace lumen::doc {

enum class DocFormat {
  kUnknown,
  kText,
  kMarkdown,
  kPdf,
  kDocx,
  kOdt,
  kPptx,
  kXlsx,
  kOds,
  kOdp,
  kRtf,
  kEpub
};
// "text", "markdown", "pdf", "docx", "odt", "pptx", "xlsx", "ods", "odp", "rtf", "epub".
const char* DocFormatName(DocFormat f);

// From the content: PDF and RTF by their magic, a ZIP by its entries (mimetype, or the OOXML
// parts), plain text by its bytes (and, to tell Markdown, the name's extension; text is taken as
// a document only under a text name). A binary named .txt is kUnknown.
DocFormat DetectDocument(const uint8_t* data, size_t size, std::string_view name);

// The pipeline's cheap first look from a file's first bytes and name: may it be a document?
bool MaybeDocument(const uint8_t* head, size_t n, std::string_view name);
// Whether the name's extension claims a document format (a failure worth reporting).
bool HasDocumentExtension(std::string_view name);

struct DocLimits {
  size_t max_chars = 20000;           // bytes of text kept
  int max_pages = 2000;               // pages, slides, sheets or chapters read at most
  uint64_t max_unpacked = 64u << 20;  // bytes inflated from a ZIP in all
  uint64_t max_entry = 32u << 20;     // bytes inflated from one ZIP entry
  double max_seconds = 10;            // per document
};

struct DocText {
  DocFormat format = DocFormat::kUnknown;
  std::string text;        // valid UTF-8, paragraphs on their own lines, at most max_chars
  bool truncated = false;  // the document has more text than was kept
  std::string title, author, created, language;  // created: "YYYY-MM-DDTHH:MM:SS" when known
  int pages = 0;              // PDF pages, slides, sheets; 0 where there are none
  bool needs_render = false;  // a PDF with pages but (almost) no text layer: a scan
};

// Errors give the reason only (the caller adds the path): Unsupported ("encrypted PDF (needs a
// password)", "binary data, not text"), TooLarge ("ZIP entry word/document.xml unpacks past 32
// MB", time), Corrupt ("broken XML in word/document.xml: ...", "not a PDF poppler can read").
Result<DocText> ExtractText(const uint8_t* data, size_t size, DocFormat f, const DocLimits& lim);

// Page `page` (0-based) of a PDF as RGB, its long edge at most `max_edge` pixels.
Result<Image> RenderPdfPage(const uint8_t* data, size_t size, int page, int max_edge);

}  // namespace lumen::doc
