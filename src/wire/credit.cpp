// Credit frames (docs/protocol.md §4.1).
#include "wire/credit.hpp"

#include "wire/byte_io.hpp"

namespace galaxies::wire {

void append_credit(std::vector<std::byte>& out, const credit_grant& c) {
  auto writer = detail::begin_frame(out, frame_type::credit, 0, 0, credit_frame_size - header_size);
  writer.put_id(c.src);
  writer.put_id(c.dst);
  writer.put(c.grant);
  writer.put(c.window);
}

std::error_code decode_credit(const frame_view& frame, credit_grant& out) noexcept {
  if (frame.header.type != frame_type::credit || frame.bytes.size() != credit_frame_size)
    return decode_error::bad_body;
  detail::byte_reader reader(detail::body_of(frame));
  reader.get_id(out.src);
  reader.get_id(out.dst);
  reader.get(out.grant);
  reader.get(out.window);
  // A window of zero would forbid the pair for good; no receiver grants one.
  if (out.window == 0) return decode_error::bad_body;
  return {};
}

}  // namespace galaxies::wire
