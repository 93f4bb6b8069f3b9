// Text efcnet writes (internal) that carries names from the file system: JSON that never throws on a
// name that is not UTF-8, and CSV fields that stay one field and never run as a spreadsheet
// formula. Header-only: the commands and the comparison report (src/compare) share it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace efcnet {

// `json` as text (`indent` as dump() takes it). A file name need not be UTF-8, which dump() would
// throw for after all the work is done: each invalid byte becomes U+FFFD instead.
template <class BasicJson>
std::string json_text(const BasicJson& json, int indent = 2) {
  return json.dump(indent, ' ', false, BasicJson::error_handler_t::replace);
}

// A text cell (a name or a path; never a number) as one CSV field. A spreadsheet runs a cell that
// starts with = + - @, a tab or a carriage return as a formula: such a cell gets a leading
// apostrophe, as OWASP's CSV injection guidance advises. Then RFC 4180: a field holding a comma, a
// quote, CR or LF is quoted, its quotes doubled. Other bytes, invalid UTF-8 included, stay as
// they are.
inline std::string csv_text_field(const std::string& text) {
  std::string field = text;
  if (!field.empty() && std::string("=+-@\t\r").find(field.front()) != std::string::npos) field.insert(0, 1, '\'');
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string quoted = "\"";
  for (const char c : field) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + '"';
}

}  // namespace efcnet
